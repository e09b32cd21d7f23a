/* The EventBatch schema's Avro writer, specialised: the sensor's encode path in C.
 *
 * fastavro's schemaless_writer walks the parsed schema for every field of every event (~0.2 us a field,
 * ~4.7 us an event here); a sensor shipping 300k events/s has ~3 us per event for everything. This module
 * writes the same bytes (tests/schemas/test_batch_writer.py compares them with fastavro's) for exactly one
 * schema, event_batch.avsc at SCHEMA_FINGERPRINT; schemas/codec.py uses it only while that fingerprint is the
 * current schema's, and fastavro otherwise. batch_reader.c is its mirror image, the processor's decode path.
 *
 * Semantics follow fastavro's writer: a missing key takes the field's default (an error where there is none),
 * longs are 64-bit zig-zag varints, strings UTF-8 with their byte length, maps and arrays one block then 0,
 * the union ["null", ProcInfo] is branch 0 for None and 1 for a mapping.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "event_batch_keys.h"  /* SCHEMA_FINGERPRINT and the K_* field names */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t need) {
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < need) cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int put_long(Buf *b, int64_t v) {
    if (b->cap - b->len < 10 && buf_grow(b, 10) < 0) return -1;
    uint64_t n = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    char *o = b->p + b->len;
    while (n & ~0x7FULL) { *o++ = (char)((n & 0x7F) | 0x80); n >>= 7; }
    *o++ = (char)n;
    b->len = o - b->p;
    return 0;
}

static inline int put_raw(Buf *b, const char *s, Py_ssize_t n) {
    if (b->cap - b->len < n && buf_grow(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}


/* A borrowed reference to record[key], or NULL without an error when the key is absent. */
static PyObject *get(PyObject *rec, PyObject *key, PyObject **owned) {
    *owned = NULL;
    if (PyDict_CheckExact(rec)) return PyDict_GetItemWithError(rec, key);
    PyObject *v = PyObject_GetItem(rec, key);
    if (!v) {
        if (PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
        return NULL;
    }
    *owned = v;
    return v;
}

/* A dict, or an object with keys() (collections.abc.Mapping); a str is neither. */
static int is_mapping(PyObject *o) {
    return PyDict_Check(o) || (!PyUnicode_Check(o) && PyObject_HasAttrString(o, "keys"));
}

static int field_error(PyObject *key, const char *what) {
    if (PyErr_Occurred()) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_Format(PyExc_ValueError, "field %U: %s (%S)", key, what, value ? value : Py_None);
        Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
    } else {
        PyErr_Format(PyExc_ValueError, "field %U: %s", key, what);
    }
    return -1;
}

static int w_long_value(Buf *b, PyObject *key, PyObject *v) {
    if (!PyLong_Check(v)) return field_error(key, "not an int");
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) return field_error(key, "out of the long range");
    return put_long(b, x);
}

static int w_str_value(Buf *b, PyObject *key, PyObject *v) {
    Py_ssize_t n;
    const char *s;
    if (PyUnicode_Check(v)) {
        s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s) return field_error(key, "not encodable as UTF-8");
    } else if (PyBytes_Check(v)) {
        s = PyBytes_AS_STRING(v);
        n = PyBytes_GET_SIZE(v);
    } else {
        return field_error(key, "not a str");
    }
    if (put_long(b, n) < 0) return -1;
    return put_raw(b, s, n);
}

/* has_default: 0 = required, 1 = default given by dflt_long / dflt_str. */
static int w_long(Buf *b, PyObject *rec, PyObject *key, int has_default, int64_t dflt) {
    PyObject *owned, *v = get(rec, key, &owned);
    if (!v) {
        if (PyErr_Occurred()) return -1;
        if (!has_default) return field_error(key, "missing (no default)");
        return put_long(b, dflt);
    }
    int r = w_long_value(b, key, v);
    Py_XDECREF(owned);
    return r;
}

static int w_str(Buf *b, PyObject *rec, PyObject *key, int has_default) {
    PyObject *owned, *v = get(rec, key, &owned);
    if (!v) {
        if (PyErr_Occurred()) return -1;
        if (!has_default) return field_error(key, "missing (no default)");
        return put_long(b, 0);
    }
    int r = w_str_value(b, key, v);
    Py_XDECREF(owned);
    return r;
}

static int w_bool(Buf *b, PyObject *rec, PyObject *key) {
    PyObject *owned, *v = get(rec, key, &owned);
    if (!v) {
        if (PyErr_Occurred()) return -1;
        return put_raw(b, "\0", 1);
    }
    int t = PyBool_Check(v) ? v == Py_True : -1;  /* fastavro's union check takes only bools here */
    Py_XDECREF(owned);
    if (t < 0) return field_error(key, "not a bool");
    return put_raw(b, t ? "\1" : "\0", 1);
}

static int w_str_array(Buf *b, PyObject *rec, PyObject *key) {
    PyObject *owned, *v = get(rec, key, &owned);
    if (!v) {
        if (PyErr_Occurred()) return -1;
        return put_long(b, 0);
    }
    int r = -1;
    PyObject *seq = PyUnicode_Check(v) || PyBytes_Check(v) ? NULL : PySequence_Fast(v, "not a list");
    if (!seq) { field_error(key, "not a list"); goto done; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > 0) {
        if (put_long(b, n) < 0) goto done_seq;
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < n; i++)
            if (w_str_value(b, key, items[i]) < 0) goto done_seq;
    }
    r = put_long(b, 0);
done_seq:
    Py_DECREF(seq);
done:
    Py_XDECREF(owned);
    return r;
}

static int w_str_map(Buf *b, PyObject *rec, PyObject *key) {
    PyObject *owned, *v = get(rec, key, &owned);
    if (!v) {
        if (PyErr_Occurred()) return -1;
        return put_long(b, 0);
    }
    int r = -1;
    if (!PyDict_Check(v)) { field_error(key, "not a dict"); goto done; }
    Py_ssize_t n = PyDict_GET_SIZE(v);
    if (n > 0) {
        if (put_long(b, n) < 0) goto done;
        Py_ssize_t pos = 0;
        PyObject *k, *val;
        while (PyDict_Next(v, &pos, &k, &val)) {
            if (w_str_value(b, key, k) < 0 || w_str_value(b, key, val) < 0) goto done;
        }
    }
    r = put_long(b, 0);
done:
    Py_XDECREF(owned);
    return r;
}

static int w_procinfo(Buf *b, PyObject *p) {
    return (w_str(b, p, K_exe, 1) < 0 || w_str(b, p, K_exepath, 1) < 0 || w_str_array(b, p, K_args) < 0
            || w_bool(b, p, K_args_truncated) < 0 || w_str(b, p, K_cwd, 1) < 0 || w_long(b, p, K_tty, 1, 0) < 0
            || w_long(b, p, K_sid, 1, 0) < 0 || w_long(b, p, K_pgid, 1, 0) < 0 || w_long(b, p, K_vpid, 1, 0) < 0
            || w_long(b, p, K_start_ts, 1, 0) < 0 || w_str_array(b, p, K_env) < 0
            || w_str(b, p, K_container_id, 1) < 0 || w_long(b, p, K_cap_permitted, 1, 0) < 0
            || w_long(b, p, K_cap_effective, 1, 0) < 0 || w_long(b, p, K_cap_inheritable, 1, 0) < 0
            || w_bool(b, p, K_exe_from_memfd) < 0 || w_bool(b, p, K_exe_upper_layer) < 0
            || w_long(b, p, K_exe_ino_ctime, 1, 0) < 0 || w_long(b, p, K_exe_ino_mtime, 1, 0) < 0
            || w_long(b, p, K_vpgid, 1, 0) < 0) ? -1 : 0;
}

static int w_event(Buf *b, PyObject *e) {
    if (!is_mapping(e)) {
        PyErr_SetString(PyExc_ValueError, "event: not a mapping");
        return -1;
    }
    if (w_long(b, e, K_ts, 0, 0) < 0 || w_str(b, e, K_type, 0) < 0 || w_long(b, e, K_tid, 0, 0) < 0
        || w_long(b, e, K_pid, 0, 0) < 0 || w_long(b, e, K_ppid, 1, 0) < 0 || w_long(b, e, K_uid, 1, 0) < 0
        || w_long(b, e, K_gid, 1, 0) < 0 || w_long(b, e, K_euid, 1, 0) < 0 || w_long(b, e, K_loginuid, 1, -1) < 0
        || w_str(b, e, K_comm, 1) < 0 || w_long(b, e, K_res, 1, 0) < 0 || w_str_map(b, e, K_args) < 0)
        return -1;
    PyObject *owned, *p = get(e, K_proc, &owned);
    if (!p) {
        if (PyErr_Occurred()) return -1;
        return put_long(b, 0);
    }
    int r;
    if (p == Py_None) {
        r = put_long(b, 0);
    } else if (is_mapping(p)) {
        r = put_long(b, 1) < 0 ? -1 : w_procinfo(b, p);
    } else {
        r = field_error(K_proc, "neither None nor a mapping");
    }
    Py_XDECREF(owned);
    return r;
}

PyDoc_STRVAR(encode_batch_doc, "encode_batch(batch) -> bytes: one EventBatch, schemaless, as fastavro writes it.");

static PyObject *encode_batch(PyObject *self, PyObject *batch) {
    Buf b = {0};
    PyObject *owned = NULL, *seq = NULL, *out = NULL;
    if (!is_mapping(batch)) {
        PyErr_SetString(PyExc_ValueError, "EventBatch: not a mapping");
        return NULL;
    }
    if (w_str(&b, batch, K_hostname, 0) < 0 || w_str(&b, batch, K_sensor_id, 0) < 0
        || w_long(&b, batch, K_batch_seq, 0, 0) < 0 || w_long(&b, batch, K_first_seq, 0, 0) < 0)
        goto done;
    PyObject *events = get(batch, K_events, &owned);
    if (!events) {
        if (!PyErr_Occurred()) field_error(K_events, "missing (no default)");
        goto done;
    }
    seq = PySequence_Fast(events, "events: not a list");
    if (!seq) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (buf_grow(&b, 128 * n + 64) < 0) goto done;
    if (n > 0) {
        if (put_long(&b, n) < 0) goto done;
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (w_event(&b, items[i]) < 0) {
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_Format(PyExc_ValueError, "events[%zd]: %S", i, value ? value : Py_None);
                Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
                goto done;
            }
        }
    }
    if (put_long(&b, 0) < 0) goto done;
    out = PyBytes_FromStringAndSize(b.p, b.len);
done:
    Py_XDECREF(seq);
    Py_XDECREF(owned);
    PyMem_Free(b.p);
    return out;
}

static PyMethodDef methods[] = {
    {"encode_batch", encode_batch, METH_O, encode_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "schemas._batch_writer",
    "The EventBatch Avro writer in C (see batch_writer.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__batch_writer(void) {
    return create_schema_module(&module);
}
