/* The EventBatch schema's Avro reader, specialised: the processor's decode path in C.
 *
 * fastavro's schemaless_reader walks the parsed schema for every field of every event (6-7 us an event here),
 * most of a processor's budget per event. This module reads one schemaless EventBatch for exactly one schema,
 * event_batch.avsc at SCHEMA_FINGERPRINT (the mirror of batch_writer.c), into the very objects fastavro returns
 * (tests/schemas/test_batch_reader.py compares them, key order included); schemas/codec.py uses it only while
 * that fingerprint is the current schema's and the record was written with it, and fastavro otherwise.
 *
 * Semantics follow fastavro's reader: longs are 64-bit zig-zag varints, strings strict UTF-8 (what bytes.decode()
 * accepts), a boolean is True for any non-zero byte, maps and arrays come in blocks up to a 0 count, a negative
 * count being followed by the block's byte size (checked to lie within the buffer, otherwise unused, as fastavro
 * does), a repeated map key keeps its first place and its last value, the union ["null", ProcInfo] is branch 0
 * or 1. Malformed input raises ValueError naming the byte offset, also where fastavro returns something anyway
 * (varints over 10 bytes, which it shifts past 64 bits; union index -1 or -2, which it takes as a Python list
 * index): codec.decode_batch then asks fastavro, whose answer stays the reference. The whole buffer must be one
 * record: trailing bytes are an error too.
 *
 * Nothing is allocated from a count read off the wire: a block count must fit the bytes left (at its items'
 * smallest encoding), lists grow by appending, maps are presized to at most 16 entries.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "event_batch_keys.h"  /* SCHEMA_FINGERPRINT and the K_* field names */

/* The smallest encodings: an Event is 9 longs, 2 strings, a map and a union index of one byte each; a map entry
 * two strings; an array item one string. */
#define MIN_EVENT 13
#define MIN_MAP_ENTRY 2
#define MIN_STR 1

typedef struct {
    const unsigned char *base, *p, *end;
    Py_ssize_t event;  /* the event being read, -1 outside events[] */
} Rd;


/* ValueError "EventBatch: events[i].field at byte n: detail"; always -1. */
static int fail(Rd *r, const unsigned char *at, const char *field, const char *fmt, ...) {
    va_list va;
    va_start(va, fmt);
    PyObject *detail = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    if (!detail) return -1;
    Py_ssize_t offset = (Py_ssize_t)(at - r->base);
    if (r->event >= 0)
        PyErr_Format(PyExc_ValueError, "EventBatch: events[%zd].%s at byte %zd: %U", r->event, field, offset, detail);
    else
        PyErr_Format(PyExc_ValueError, "EventBatch: %s at byte %zd: %U", field, offset, detail);
    Py_DECREF(detail);
    return -1;
}

static int get_long_slow(Rd *r, const char *field, int64_t *out) {
    const unsigned char *at = r->p, *p = r->p;
    uint64_t n = 0;
    for (int i = 0;; i++) {
        if (i == 10) return fail(r, at, field, "varint longer than 10 bytes");
        if (p >= r->end) return fail(r, at, field, "truncated long (%zd bytes left)", (Py_ssize_t)(r->end - at));
        uint64_t b = *p++;
        n |= (b & 0x7F) << (7 * i);  /* the 10th byte's bits above bit 63 drop, as in fastavro */
        if (!(b & 0x80)) break;
    }
    r->p = p;
    *out = (int64_t)((n >> 1) ^ (0 - (n & 1)));
    return 0;
}

static inline int get_long(Rd *r, const char *field, int64_t *out) {
    if (r->p < r->end && !(*r->p & 0x80)) {  /* one byte: -64..63 */
        uint64_t n = *r->p++;
        *out = (int64_t)((n >> 1) ^ (0 - (n & 1)));
        return 0;
    }
    return get_long_slow(r, field, out);
}

static inline PyObject *read_long(Rd *r, const char *field) {
    int64_t v;
    if (get_long(r, field, &v) < 0) return NULL;
    return PyLong_FromLongLong(v);
}

static PyObject *read_bool(Rd *r, const char *field) {
    if (r->p >= r->end) {
        fail(r, r->p, field, "truncated boolean");
        return NULL;
    }
    return PyBool_FromLong(*r->p++ != 0);
}

/* Short strings repeat (event types, comms, argument names, fds, flags): a direct-mapped cache of str objects
 * keyed by their bytes spares the decode, the allocation, and later the hashing of map keys. Its entries were
 * decoded once, so they are valid UTF-8. */
#define CACHE_BITS 10
#define CACHE_MAX_LEN 16
typedef struct {
    PyObject *str;
    uint64_t a, b;  /* the bytes, as load_short() reads them */
    Py_ssize_t len;
} Slot;
static Slot cache[1 << CACHE_BITS];

/* n <= 16 bytes as two words that cover all of them (overlapping where n is not 8 or 16): two strings of one
 * length are equal when their words are. */
static inline void load_short(const unsigned char *s, Py_ssize_t n, uint64_t *a, uint64_t *b) {
    if (n >= 8) {
        memcpy(a, s, 8);
        memcpy(b, s + n - 8, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        *a = x;
        *b = y;
    } else {
        *a = n ? (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16 : 0;
        *b = 0;
    }
}

static PyObject *decode_utf8(Rd *r, const unsigned char *at, const char *field, const unsigned char *s,
                             Py_ssize_t n) {
    PyObject *u = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (!u) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return NULL;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        fail(r, at, field, "invalid UTF-8 (%S)", value ? value : Py_None);
        Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
    }
    return u;
}

static PyObject *read_str(Rd *r, const char *field) {
    const unsigned char *at = r->p;
    int64_t n;
    if (get_long(r, field, &n) < 0) return NULL;
    if (n < 0 || n > r->end - r->p) {
        fail(r, at, field, "string of %lld bytes, %zd left", (long long)n, (Py_ssize_t)(r->end - r->p));
        return NULL;
    }
    const unsigned char *s = r->p;
    r->p += n;
    if (n > CACHE_MAX_LEN) return decode_utf8(r, at, field, s, (Py_ssize_t)n);
    uint64_t a, b;
    load_short(s, (Py_ssize_t)n, &a, &b);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)n) * 0xFF51AFD7ED558CCDULL;
    Slot *slot = &cache[h >> (64 - CACHE_BITS)];
    if (slot->str && slot->a == a && slot->b == b && slot->len == n) {
        Py_INCREF(slot->str);
        return slot->str;
    }
    PyObject *u = decode_utf8(r, at, field, s, (Py_ssize_t)n);
    if (u) {
        Py_INCREF(u);
        Py_XSETREF(slot->str, u);
        slot->a = a;
        slot->b = b;
        slot->len = (Py_ssize_t)n;
    }
    return u;
}

/* A block's item count (0 ends the array or map); no more items than the bytes left can hold. */
static int block_count(Rd *r, const char *field, Py_ssize_t min_item, Py_ssize_t *count) {
    const unsigned char *at = r->p;
    int64_t n;
    if (get_long(r, field, &n) < 0) return -1;
    if (n < 0) {
        if (n == INT64_MIN) return fail(r, at, field, "block count %lld", (long long)n);
        n = -n;
        const unsigned char *at_size = r->p;
        int64_t size;
        if (get_long(r, field, &size) < 0) return -1;
        if (size < 0 || size > r->end - r->p)
            return fail(r, at_size, field, "block of %lld bytes, %zd left", (long long)size,
                        (Py_ssize_t)(r->end - r->p));
    }
    if (n > (r->end - r->p) / min_item)
        return fail(r, at, field, "block of %lld items, %zd bytes left", (long long)n, (Py_ssize_t)(r->end - r->p));
    *count = (Py_ssize_t)n;
    return 0;
}

/* d[key] = expr (a new reference, NULL on error), or goto fail. */
#define PUT(d, key, expr) do { \
        PyObject *v_ = (expr); \
        if (!v_) goto fail; \
        int rc_ = PyDict_SetItem(d, key, v_); \
        Py_DECREF(v_); \
        if (rc_ < 0) goto fail; \
    } while (0)

static PyObject *read_str_array(Rd *r, const char *field) {
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (;;) {
        Py_ssize_t n;
        if (block_count(r, field, MIN_STR, &n) < 0) goto fail;
        if (n == 0) return list;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *s = read_str(r, field);
            if (!s) goto fail;
            int rc = PyList_Append(list, s);
            Py_DECREF(s);
            if (rc < 0) goto fail;
        }
    }
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *read_str_map(Rd *r, const char *field) {
    Py_ssize_t n;
    if (block_count(r, field, MIN_MAP_ENTRY, &n) < 0) return NULL;
    PyObject *map = _PyDict_NewPresized(n < 16 ? n : 16);
    if (!map) return NULL;
    while (n) {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *k = read_str(r, field);
            if (!k) goto fail;
            PyObject *v = read_str(r, field);
            if (!v) { Py_DECREF(k); goto fail; }
            int rc = PyDict_SetItem(map, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc < 0) goto fail;
        }
        if (block_count(r, field, MIN_MAP_ENTRY, &n) < 0) goto fail;
    }
    return map;
fail:
    Py_DECREF(map);
    return NULL;
}

static PyObject *read_procinfo(Rd *r) {
    PyObject *p = _PyDict_NewPresized(20);
    if (!p) return NULL;
    PUT(p, K_exe, read_str(r, "proc.exe"));
    PUT(p, K_exepath, read_str(r, "proc.exepath"));
    PUT(p, K_args, read_str_array(r, "proc.args"));
    PUT(p, K_args_truncated, read_bool(r, "proc.args_truncated"));
    PUT(p, K_cwd, read_str(r, "proc.cwd"));
    PUT(p, K_tty, read_long(r, "proc.tty"));
    PUT(p, K_sid, read_long(r, "proc.sid"));
    PUT(p, K_pgid, read_long(r, "proc.pgid"));
    PUT(p, K_vpid, read_long(r, "proc.vpid"));
    PUT(p, K_start_ts, read_long(r, "proc.start_ts"));
    PUT(p, K_env, read_str_array(r, "proc.env"));
    PUT(p, K_container_id, read_str(r, "proc.container_id"));
    PUT(p, K_cap_permitted, read_long(r, "proc.cap_permitted"));
    PUT(p, K_cap_effective, read_long(r, "proc.cap_effective"));
    PUT(p, K_cap_inheritable, read_long(r, "proc.cap_inheritable"));
    PUT(p, K_exe_from_memfd, read_bool(r, "proc.exe_from_memfd"));
    PUT(p, K_exe_upper_layer, read_bool(r, "proc.exe_upper_layer"));
    PUT(p, K_exe_ino_ctime, read_long(r, "proc.exe_ino_ctime"));
    PUT(p, K_exe_ino_mtime, read_long(r, "proc.exe_ino_mtime"));
    PUT(p, K_vpgid, read_long(r, "proc.vpgid"));
    return p;
fail:
    Py_DECREF(p);
    return NULL;
}

static PyObject *read_proc_union(Rd *r) {
    const unsigned char *at = r->p;
    int64_t branch;
    if (get_long(r, "proc", &branch) < 0) return NULL;
    if (branch == 0) Py_RETURN_NONE;
    if (branch == 1) return read_procinfo(r);
    fail(r, at, "proc", "union branch %lld of [null, ProcInfo]", (long long)branch);
    return NULL;
}

static PyObject *read_event(Rd *r) {
    PyObject *e = _PyDict_NewPresized(13);
    if (!e) return NULL;
    PUT(e, K_ts, read_long(r, "ts"));
    PUT(e, K_type, read_str(r, "type"));
    PUT(e, K_tid, read_long(r, "tid"));
    PUT(e, K_pid, read_long(r, "pid"));
    PUT(e, K_ppid, read_long(r, "ppid"));
    PUT(e, K_uid, read_long(r, "uid"));
    PUT(e, K_gid, read_long(r, "gid"));
    PUT(e, K_euid, read_long(r, "euid"));
    PUT(e, K_loginuid, read_long(r, "loginuid"));
    PUT(e, K_comm, read_str(r, "comm"));
    PUT(e, K_res, read_long(r, "res"));
    PUT(e, K_args, read_str_map(r, "args"));
    PUT(e, K_proc, read_proc_union(r));
    return e;
fail:
    Py_DECREF(e);
    return NULL;
}

static PyObject *read_events(Rd *r) {
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (;;) {
        Py_ssize_t n;
        r->event = -1;
        if (block_count(r, "events", MIN_EVENT, &n) < 0) goto fail;
        if (n == 0) return list;
        for (Py_ssize_t i = 0; i < n; i++) {
            r->event = PyList_GET_SIZE(list);
            PyObject *e = read_event(r);
            if (!e) goto fail;
            int rc = PyList_Append(list, e);
            Py_DECREF(e);
            if (rc < 0) goto fail;
        }
    }
fail:
    Py_DECREF(list);
    return NULL;
}

PyDoc_STRVAR(decode_batch_doc,
             "decode_batch(data) -> dict: one schemaless EventBatch (a contiguous bytes-like object, all of it), as\n"
             "fastavro.schemaless_reader reads it; ValueError naming the byte offset where it is malformed.");

static PyObject *decode_batch(PyObject *self, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
    Rd r = {view.buf, view.buf, (const unsigned char *)view.buf + view.len, -1};
    PyObject *b = _PyDict_NewPresized(5);
    if (!b) goto fail;
    PUT(b, K_hostname, read_str(&r, "hostname"));
    PUT(b, K_sensor_id, read_str(&r, "sensor_id"));
    PUT(b, K_batch_seq, read_long(&r, "batch_seq"));
    PUT(b, K_first_seq, read_long(&r, "first_seq"));
    PUT(b, K_events, read_events(&r));
    r.event = -1;
    if (r.p != r.end) {
        PyErr_Format(PyExc_ValueError, "EventBatch: %zd trailing bytes from byte %zd on", (Py_ssize_t)(r.end - r.p),
                     (Py_ssize_t)(r.p - r.base));
        goto fail;
    }
    PyBuffer_Release(&view);
    return b;
fail:
    Py_XDECREF(b);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decode_batch", decode_batch, METH_O, decode_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "schemas._batch_reader",
    "The EventBatch Avro reader in C (see batch_reader.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__batch_reader(void) {
    return create_schema_module(&module);
}
