/* Walking a BPF ring buffer's committed records, in C: sensor/ringbuf.py's per-record loop.
 *
 * RingReader.drain reads each record's 8-byte header (length, busy and discard bits) to find where the next one
 * starts; in Python that was ~0.25 us a record, now a few nanoseconds, so Python touches the buffer once per
 * chunk of records. tests/sensor/test_ring_scan.py checks it against the Python loop it replaces.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BUSY (1u << 31)
#define DISCARD (1u << 30)

PyDoc_STRVAR(scan_doc,
"scan(view, data_base, mask, cons, prod, limit) -> (offsets, cons)\n\n"
"The data offsets in `view` of up to `limit` committed, not discarded records from consumer position `cons`\n"
"towards producer position `prod`, and the consumer position after them (past discarded ones too); stops at\n"
"the first record still being written (busy).");

static PyObject *scan(PyObject *self, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan(view, data_base, mask, cons, prod, limit)");
        return NULL;
    }
    Py_ssize_t base = PyLong_AsSsize_t(a[1]);
    unsigned long long mask = PyLong_AsUnsignedLongLong(a[2]);
    unsigned long long cons = PyLong_AsUnsignedLongLong(a[3]);
    unsigned long long prod = PyLong_AsUnsignedLongLong(a[4]);
    Py_ssize_t limit = PyLong_AsSsize_t(a[5]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer buf;
    if (PyObject_GetBuffer(a[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *offsets = PyList_New(0);
    if (!offsets) goto fail;
    while (cons < prod && PyList_GET_SIZE(offsets) < limit) {
        Py_ssize_t off = base + (Py_ssize_t)(cons & mask);
        if (off < 0 || off + 8 > buf.len) {
            PyErr_Format(PyExc_ValueError, "ring record header at %zd outside the mapping", off);
            goto fail;
        }
        uint32_t hlen;
        memcpy(&hlen, (const char *)buf.buf + off, 4);
        if (hlen & BUSY) break;
        if (!(hlen & DISCARD)) {
            PyObject *o = PyLong_FromSsize_t(off + 8);
            if (!o || PyList_Append(offsets, o) < 0) { Py_XDECREF(o); goto fail; }
            Py_DECREF(o);
        }
        cons += ((hlen & ~(BUSY | DISCARD)) + 15) & ~7ULL;
    }
    PyBuffer_Release(&buf);
    PyObject *out = Py_BuildValue("(NK)", offsets, cons);
    return out;
fail:
    Py_XDECREF(offsets);
    PyBuffer_Release(&buf);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sensor._ring_scan", "A BPF ring buffer's record walk in C (see ring_scan.c).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__ring_scan(void) { return PyModule_Create(&module); }
