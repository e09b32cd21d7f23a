/* The probe's openat and close records -> Event dicts, in C: the sensor's per-event hot path.
 *
 * On a busy node most records are openat and close; in Python each cost ~2 us (header unpack, dict and string
 * building), which held the sensor to ~280k events/s with zero loss. This does exactly what
 * sensor/decode.py's Decoder.decode_many_py does for those two kinds (tests/sensor/test_record_decoder.py feeds
 * the same records to both and compares events and fd tables) and hands every other record, in order, back to
 * decode_many_py. Per-process state stays in Python's ProcTable; relative paths and unknown users still go
 * through its Python methods.
 *
 * Record layout (sensor/decode.py HDR, "<Qq6QIHHIIIIIII8HI16s", 136 bytes), then the variable blobs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#define HDR_SIZE 136
#define OFF_TS 0
#define OFF_RES 8
#define OFF_ARGS 16
#define OFF_KIND 68
#define OFF_FLAGS 70
#define OFF_TID 72
#define OFF_PID 76
#define OFF_PPID 80
#define OFF_UID 84
#define OFF_GID 88
#define OFF_EUID 92
#define OFF_LOGINUID 96
#define OFF_BLOBLEN 100
#define OFF_COMM 120
#define COMM_CACHE_MAX 4096
#define UNSET_LOGINUID 0xFFFFFFFFu

static PyObject *K_ts, *K_type, *K_tid, *K_pid, *K_ppid, *K_uid, *K_gid, *K_euid, *K_loginuid, *K_comm, *K_res,
    *K_args, *K_proc, *K_name, *K_flags, *K_mode, *K_fd, *K_dirfd, *K_nameraw, *K_fdname, *K_fds, *K_fdargs, *S_resolve,
    *S_get, *S_user, *S_group, *S_meta, *S_decode_py;

static inline uint64_t u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t u16(const char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* Decimal text of an int (Falco's args are strings): small values, most fds, modes and dirfds, are cached. */
#define SMALL_MIN (-128)
#define SMALL_MAX 4096
static PyObject *small_text[SMALL_MAX - SMALL_MIN + 1];

static PyObject *int_text(long long v) {
    if (v >= SMALL_MIN && v <= SMALL_MAX) {
        PyObject **slot = &small_text[v - SMALL_MIN];
        if (!*slot) {
            char tmp[24];
            int n = snprintf(tmp, sizeof tmp, "%lld", v);
            *slot = PyUnicode_FromStringAndSize(tmp, n);
            if (!*slot) return NULL;
        }
        Py_INCREF(*slot);
        return *slot;
    }
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--p = '-';
    return PyUnicode_FromStringAndSize(p, e - p);
}

static PyObject *uint_text(unsigned long long u) {
    if (u <= SMALL_MAX) return int_text((long long)u);
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    return PyUnicode_FromStringAndSize(p, e - p);
}

/* FdInfo(name), without running the dataclass's Python __init__: its two slots set directly. */
static PyObject *new_fdinfo(PyObject *cls, PyObject *name) {
    PyTypeObject *t = (PyTypeObject *)cls;
    PyObject *info = t->tp_alloc(t, 0);
    if (!info) return NULL;
    if (PyObject_SetAttr(info, K_name, name) < 0 || PyObject_SetAttr(info, K_fdargs, Py_None) < 0) {
        Py_DECREF(info);
        return NULL;
    }
    return info;
}

/* dict[key] = value, stealing value's reference; -1 on error (value released). */
static inline int set_steal(PyObject *d, PyObject *key, PyObject *value) {
    if (!value) return -1;
    int r = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return r;
}

static PyObject *comm_lookup(PyObject *comms, const char *p) {
    PyObject *key = PyBytes_FromStringAndSize(p, 16);
    if (!key) return NULL;
    PyObject *comm = PyDict_GetItemWithError(comms, key);
    if (comm) {
        Py_INCREF(comm);
    } else if (!PyErr_Occurred()) {
        if (PyDict_GET_SIZE(comms) > COMM_CACHE_MAX) PyDict_Clear(comms);  /* comms are attacker-chosen */
        const char *end = memchr(p, 0, 16);
        comm = PyUnicode_DecodeUTF8(p, end ? end - p : 16, "replace");
        if (comm && PyDict_SetItem(comms, key, comm) < 0) Py_CLEAR(comm);
    }
    Py_DECREF(key);
    return comm;
}

/* A run of records from one process repeats its comm: the last one is kept per call of decode_many. */
typedef struct {
    char raw[16];
    PyObject *text;
} LastComm;

static PyObject *comm_of(PyObject *comms, const char *p, LastComm *last) {
    if (last->text && memcmp(last->raw, p, 16) == 0) {
        Py_INCREF(last->text);
        return last->text;
    }
    PyObject *comm = comm_lookup(comms, p);
    if (comm) {
        Py_XSETREF(last->text, comm);
        Py_INCREF(comm);
        memcpy(last->raw, p, 16);
    }
    return comm;
}

/* The ProcState of pid: procs.get(pid), else proctable.get(pid) (which reads /proc). New reference. */
static PyObject *proc_state(PyObject *procs, PyObject *proctable, PyObject *pid, int create) {
    PyObject *st = PyDict_GetItemWithError(procs, pid);
    if (st) { Py_INCREF(st); return st; }
    if (PyErr_Occurred() || !create) return NULL;
    return PyObject_CallMethodOneArg(proctable, S_get, pid);
}

/* The openat record's args, and its fd table update. New reference to the args dict. */
static PyObject *openat_args(const char *r, Py_ssize_t room, long long res, PyObject *pid, PyObject *procs,
                             PyObject *proctable, PyObject *fdinfo, Py_ssize_t max_fds) {
    int32_t dirfd = (int32_t)u32(r + OFF_ARGS);
    uint16_t n = u16(r + OFF_BLOBLEN);
    const char *path = r + HDR_SIZE;
    Py_ssize_t plen = n ? n - 1 : 0;
    if (HDR_SIZE + plen > room)  /* never from the probe; cut at the mapping's end, as Python's slice would be */
        plen = room - HDR_SIZE;
    PyObject *name = PyUnicode_DecodeUTF8(path, plen, "replace");
    PyObject *args = PyDict_New();
    if (!name || !args) goto fail;
    if (PyDict_SetItem(args, K_name, name) < 0
        || set_steal(args, K_flags, uint_text(u64(r + OFF_ARGS + 16))) < 0
        || set_steal(args, K_mode, uint_text(u64(r + OFF_ARGS + 24))) < 0
        || set_steal(args, K_fd, int_text(res)) < 0
        || set_steal(args, K_dirfd, int_text(dirfd)) < 0)
        goto fail;
    if (plen == 0 || path[0] != '/' || memmem(path, (size_t)plen, "/.", 2) || memmem(path, (size_t)plen, "//", 2)) {
        PyObject *dfd = PyLong_FromLong(dirfd);
        if (!dfd) goto fail;
        PyObject *resolved = PyObject_CallMethodObjArgs(proctable, S_resolve, pid, name, dfd, NULL);
        Py_DECREF(dfd);
        if (!resolved) goto fail;
        if (PyDict_SetItem(args, K_name, resolved) < 0) { Py_DECREF(resolved); goto fail; }
        int same = PyUnicode_Check(resolved) ? PyUnicode_Compare(resolved, name) : 1;
        if (same == -1 && PyErr_Occurred()) { Py_DECREF(resolved); goto fail; }
        if (same != 0 && PyDict_SetItem(args, K_nameraw, name) < 0) { Py_DECREF(resolved); goto fail; }
        Py_SETREF(name, resolved);
    }
    if (res >= 0) {
        PyObject *st = proc_state(procs, proctable, pid, 1);
        if (!st) goto fail;
        PyObject *fds = PyObject_GetAttr(st, K_fds);
        Py_DECREF(st);
        if (!fds) goto fail;
        int r2 = 0;
        if (!PyDict_Check(fds)) {
            PyErr_SetString(PyExc_TypeError, "ProcState.fds is not a dict");
            r2 = -1;
        } else if (PyDict_GET_SIZE(fds) < max_fds) {
            PyObject *fd = PyLong_FromLongLong(res);
            PyObject *info = fd ? new_fdinfo(fdinfo, name) : NULL;
            r2 = info ? PyDict_SetItem(fds, fd, info) : -1;
            Py_XDECREF(fd);
            Py_XDECREF(info);
        }
        Py_DECREF(fds);
        if (r2 < 0) goto fail;
    }
    Py_DECREF(name);
    return args;
fail:
    Py_XDECREF(name);
    Py_XDECREF(args);
    return NULL;
}

static PyObject *close_args(const char *r, long long res, PyObject *pid, PyObject *procs) {
    int32_t fd = (int32_t)u32(r + OFF_ARGS);
    PyObject *args = PyDict_New();
    if (!args || set_steal(args, K_fd, int_text(fd)) < 0) goto fail;
    if (res == 0) {
        PyObject *st = proc_state(procs, NULL, pid, 0);
        if (!st) {
            if (PyErr_Occurred()) goto fail;
            return args;
        }
        PyObject *fds = PyObject_GetAttr(st, K_fds);
        Py_DECREF(st);
        if (!fds) goto fail;
        if (!PyDict_Check(fds)) {
            Py_DECREF(fds);
            PyErr_SetString(PyExc_TypeError, "ProcState.fds is not a dict");
            goto fail;
        }
        PyObject *key = PyLong_FromLong(fd);
        PyObject *info = key ? PyDict_GetItemWithError(fds, key) : NULL;
        int r2 = key && !PyErr_Occurred() ? 0 : -1;
        if (info) {
            PyObject *name = PyObject_GetAttr(info, K_name);  /* before the table lets go of info */
            r2 = name && PyDict_DelItem(fds, key) == 0 ? set_steal(args, K_fdname, name) : -1;
            if (r2 < 0) Py_XDECREF(name);
        }
        Py_XDECREF(key);
        Py_DECREF(fds);
        if (r2 < 0) goto fail;
    }
    return args;
fail:
    Py_XDECREF(args);
    return NULL;
}

/* Boot-clock ns + the epoch offset; as Python's int would give it even for a (never seen) huge raw value. */
static PyObject *event_time(uint64_t raw, long long epoch, PyObject *epoch_obj) {
    if (epoch >= 0 && raw <= (uint64_t)(LLONG_MAX - epoch)) return PyLong_FromLongLong((long long)raw + epoch);
    PyObject *r = PyLong_FromUnsignedLongLong(raw);
    if (!r) return NULL;
    PyObject *sum = PyNumber_Add(r, epoch_obj);
    Py_DECREF(r);
    return sum;
}

/* A user or group the sensor has not announced yet: the decoder's Python method emits its meta event. */
static int announce(PyObject *known, uint32_t id, PyObject *decoder, PyObject *method, PyObject *ev, int *meta) {
    PyObject *key = PyLong_FromUnsignedLong(id);
    if (!key) return -1;
    int has = PySet_Contains(known, key);
    if (has == 0) {
        PyObject *r = PyObject_CallMethodObjArgs(decoder, method, key, ev, NULL);
        if (!r) has = -1;
        Py_XDECREF(r);
        *meta = 1;
    }
    Py_DECREF(key);
    return has < 0 ? -1 : 0;
}

PyDoc_STRVAR(decode_many_doc,
"decode_many(view, offsets, ctx) -> int\n\n"
"Appends the events of the records at `offsets` of `view` to ctx's out list, in order: openat and close here,\n"
"every other record through decoder.decode_many_py. Returns how many openat/close records were marked\n"
"truncated. ctx = (decoder, out, comms, procs, proctable, FdInfo, max_fds, epoch, known_uids, known_gids,\n"
"nr_openat, nr_close, type_openat, type_close).");

static PyObject *decode_many(PyObject *self, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(a[1]) || !PyTuple_Check(a[2]) || PyTuple_GET_SIZE(a[2]) != 14) {
        PyErr_SetString(PyExc_TypeError, "decode_many(view, offsets: list, ctx: 14-tuple)");
        return NULL;
    }
    PyObject *view = a[0], *offsets = a[1], *ctx = a[2];
    PyObject *decoder = PyTuple_GET_ITEM(ctx, 0), *out = PyTuple_GET_ITEM(ctx, 1),
             *comms = PyTuple_GET_ITEM(ctx, 2), *procs = PyTuple_GET_ITEM(ctx, 3),
             *proctable = PyTuple_GET_ITEM(ctx, 4), *fdinfo = PyTuple_GET_ITEM(ctx, 5),
             *known_uids = PyTuple_GET_ITEM(ctx, 8), *known_gids = PyTuple_GET_ITEM(ctx, 9),
             *type_openat = PyTuple_GET_ITEM(ctx, 12), *type_close = PyTuple_GET_ITEM(ctx, 13);
    Py_ssize_t max_fds = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 6));
    long long epoch = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, 7));
    long nr_openat = PyLong_AsLong(PyTuple_GET_ITEM(ctx, 10)), nr_close = PyLong_AsLong(PyTuple_GET_ITEM(ctx, 11));
    if (PyErr_Occurred()) return NULL;
    if (!PyList_Check(out) || !PyDict_Check(comms) || !PyDict_Check(procs) || !PyAnySet_Check(known_uids)
        || !PyAnySet_Check(known_gids)) {
        PyErr_SetString(PyExc_TypeError, "decode_many: ctx has the wrong types");
        return NULL;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(view, &buf, PyBUF_SIMPLE) < 0) return NULL;
    const char *base = buf.buf;
    long truncated = 0;
    Py_ssize_t n = PyList_GET_SIZE(offsets);
    PyObject *pending = NULL;  /* a run of other records, handed over together */
    LastComm last = {{0}, NULL};
    int ok = 1;
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        PyObject *o = PyList_GET_ITEM(offsets, i);
        Py_ssize_t off = PyLong_AsSsize_t(o);
        if (off < 0 || off + HDR_SIZE > buf.len) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "record offset %zd outside the buffer", off);
            ok = 0;
            break;
        }
        const char *r = base + off;
        long kind = u16(r + OFF_KIND);
        if (kind != nr_openat && kind != nr_close) {
            if (!pending && !(pending = PyList_New(0))) { ok = 0; break; }
            if (PyList_Append(pending, o) < 0) { ok = 0; break; }
            continue;
        }
        if (pending) {
            PyObject *res = PyObject_CallMethodObjArgs(decoder, S_decode_py, view, pending, NULL);
            Py_CLEAR(pending);
            if (!res) { ok = 0; break; }
            Py_DECREF(res);
        }
        long long res = (long long)u64(r + OFF_RES);
        uint32_t uid = u32(r + OFF_UID), gid = u32(r + OFF_GID), loginuid = u32(r + OFF_LOGINUID);
        PyObject *pid = PyLong_FromUnsignedLong(u32(r + OFF_PID));
        PyObject *comm = pid ? comm_of(comms, r + OFF_COMM, &last) : NULL;
        PyObject *args = NULL, *ev = NULL;
        if (comm) {
            args = kind == nr_openat
                ? openat_args(r, buf.len - off, res, pid, procs, proctable, fdinfo, max_fds)
                : close_args(r, res, pid, procs);
        }
        if (args && (ev = PyDict_New())) {
            if (set_steal(ev, K_ts, event_time(u64(r + OFF_TS), epoch, PyTuple_GET_ITEM(ctx, 7))) < 0
                || PyDict_SetItem(ev, K_type, kind == nr_openat ? type_openat : type_close) < 0
                || set_steal(ev, K_tid, PyLong_FromUnsignedLong(u32(r + OFF_TID))) < 0
                || PyDict_SetItem(ev, K_pid, pid) < 0
                || set_steal(ev, K_ppid, PyLong_FromUnsignedLong(u32(r + OFF_PPID))) < 0
                || set_steal(ev, K_uid, PyLong_FromUnsignedLong(uid)) < 0
                || set_steal(ev, K_gid, PyLong_FromUnsignedLong(gid)) < 0
                || set_steal(ev, K_euid, PyLong_FromUnsignedLong(u32(r + OFF_EUID))) < 0
                || set_steal(ev, K_loginuid, loginuid == UNSET_LOGINUID ? PyLong_FromLong(-1)
                                                                       : PyLong_FromUnsignedLong(loginuid)) < 0
                || PyDict_SetItem(ev, K_comm, comm) < 0
                || set_steal(ev, K_res, PyLong_FromLongLong(res)) < 0
                || PyDict_SetItem(ev, K_args, args) < 0
                || PyDict_SetItem(ev, K_proc, Py_None) < 0)
                Py_CLEAR(ev);
        }
        Py_XDECREF(pid);
        Py_XDECREF(comm);
        Py_XDECREF(args);
        if (!ev) { ok = 0; break; }
        if (u16(r + OFF_FLAGS)) truncated++;
        int meta = 0;
        if (announce(known_uids, uid, decoder, S_user, ev, &meta) < 0
            || announce(known_gids, gid, decoder, S_group, ev, &meta) < 0) {
            Py_DECREF(ev);
            ok = 0;
            break;
        }
        if (meta) {  /* the meta events go out before the event that revealed them */
            PyObject *m = PyObject_GetAttr(decoder, S_meta);
            Py_ssize_t mn = m && PyList_Check(m) ? PyList_GET_SIZE(m) : -1;
            if (mn < 0 || PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, m) < 0
                || PyList_SetSlice(m, 0, mn, NULL) < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "decoder.meta is not a list");
                Py_XDECREF(m);
                Py_DECREF(ev);
                ok = 0;
                break;
            }
            Py_DECREF(m);
        }
        int r2 = PyList_Append(out, ev);
        Py_DECREF(ev);
        if (r2 < 0) { ok = 0; break; }
    }
    if (ok && pending) {
        PyObject *res = PyObject_CallMethodObjArgs(decoder, S_decode_py, view, pending, NULL);
        if (!res) ok = 0;
        Py_XDECREF(res);
    }
    Py_XDECREF(pending);
    Py_XDECREF(last.text);
    PyBuffer_Release(&buf);
    return ok ? PyLong_FromLong(truncated) : NULL;
}

static PyMethodDef methods[] = {
    {"decode_many", (PyCFunction)(void (*)(void))decode_many, METH_FASTCALL, decode_many_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sensor._record_decoder",
    "openat/close probe records -> Event dicts in C (see record_decoder.c).", -1, methods,
};

#define INTERN(var, name) if (!(var = PyUnicode_InternFromString(name))) return NULL

PyMODINIT_FUNC PyInit__record_decoder(void) {
    INTERN(K_ts, "ts"); INTERN(K_type, "type"); INTERN(K_tid, "tid"); INTERN(K_pid, "pid"); INTERN(K_ppid, "ppid");
    INTERN(K_uid, "uid"); INTERN(K_gid, "gid"); INTERN(K_euid, "euid"); INTERN(K_loginuid, "loginuid");
    INTERN(K_comm, "comm"); INTERN(K_res, "res"); INTERN(K_args, "args"); INTERN(K_proc, "proc");
    INTERN(K_name, "name"); INTERN(K_flags, "flags"); INTERN(K_mode, "mode"); INTERN(K_fd, "fd");
    INTERN(K_dirfd, "dirfd"); INTERN(K_nameraw, "nameraw"); INTERN(K_fdname, "fd.name"); INTERN(K_fds, "fds"); INTERN(K_fdargs, "args");
    INTERN(S_resolve, "resolve"); INTERN(S_get, "get"); INTERN(S_user, "_user"); INTERN(S_group, "_group");
    INTERN(S_meta, "meta"); INTERN(S_decode_py, "decode_many_py");
    return PyModule_Create(&module);
}
