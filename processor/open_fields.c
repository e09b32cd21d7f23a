/* An open's fd.* / evt.* fields and its process's name and container, in C: processor/event_fields.py's
 * `open_fields` + `name_and_container`, which every open event (most of a node's events) runs before the rules.
 *
 * In Python, building an open's fields (freeing included) took ~2.2 us of its ~5; with this, ~1.3. It handles
 * the shapes the wire gives (str names, int results, dict records) and leaves everything else to the Python
 * functions it mirrors: `seed` returns False without touching `out` and the caller runs them, so an odd event
 * gets the very fields (or the very exception) it always got. tests/processor/test_open_fields_c.py compares the
 * two on ordinary, hostile and random events.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <string.h>

static PyObject *K_args, *K_pid, *K_flags, *K_name, *K_nameraw, *K_res, *K_exepath, *K_exe, *K_comm, *K_container_id;
static PyObject *F_fd_name, *F_fd_nameraw, *F_fd_num, *F_fd_directory, *F_fd_filename, *F_proc_name,
    *F_container_id, *S_slash, *S_host, *ZERO;

/* `d.get(key)` for an exact dict, borrowed, NULL when absent; -1 on an error (cleared: the caller falls back). */
static int lookup(PyObject *d, PyObject *key, PyObject **out) {
    *out = PyDict_GetItemWithError(d, key);
    if (*out == NULL && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* truthiness of a value that may be absent (NULL); -1 on an error (cleared) */
static int truthy(PyObject *v) {
    if (v == NULL || v == Py_None) return 0;
    int t = PyObject_IsTrue(v);
    if (t < 0) PyErr_Clear();
    return t;
}

static int set(PyObject *out, PyObject *key, PyObject *value) { return PyDict_SetItem(out, key, value); }

/* name.rpartition("/") as (head, tail), new references */
static int rpartition_slash(PyObject *name, PyObject **head, PyObject **tail) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    Py_ssize_t at = PyUnicode_FindChar(name, '/', 0, n, -1);
    if (at == -2) return -1;
    if (at == -1) {
        *head = PyUnicode_New(0, 0);
        *tail = Py_NewRef(name);
    } else {
        *head = PyUnicode_Substring(name, 0, at);
        *tail = PyUnicode_Substring(name, at + 1, n);
    }
    if (*head == NULL || *tail == NULL) {
        Py_XDECREF(*head);
        Py_XDECREF(*tail);
        return -1;
    }
    return 0;
}

/* name_and_container(p, out) for a non-empty exact dict; skips both fields where the Python function would raise
 * (and its caller ignore it). -1 only on a memory error. */
static int seed_process(PyObject *out, PyObject *p) {
    PyObject *exepath, *exe, *path = NULL, *comm, *cid;
    if (lookup(p, K_exepath, &exepath) < 0 || lookup(p, K_exe, &exe) < 0) return 0;
    int t = truthy(exepath);
    if (t < 0) return 0;
    if (t) {
        path = exepath;
    } else {
        t = truthy(exe);
        if (t < 0) return 0;
        if (t) path = exe;
    }
    PyObject *name;
    if (path != NULL) {
        if (!PyUnicode_Check(path)) return 0;  /* Python's rpartition raises: nothing seeded */
        PyObject *head, *tail;
        if (rpartition_slash(path, &head, &tail) < 0) return -1;
        Py_DECREF(head);
        name = tail;
    } else {
        if (lookup(p, K_comm, &comm) < 0) return 0;
        t = truthy(comm);
        if (t < 0) return 0;
        name = Py_NewRef(t ? comm : Py_None);
    }
    if (lookup(p, K_container_id, &cid) < 0) {
        Py_DECREF(name);
        return 0;
    }
    t = truthy(cid);
    if (t < 0) {
        Py_DECREF(name);
        return 0;
    }
    int rc = set(out, F_proc_name, name);
    Py_DECREF(name);
    if (rc < 0 || set(out, F_container_id, t ? cid : S_host) < 0) return -1;
    return 0;
}

PyDoc_STRVAR(seed_doc,
"seed(out, ev, etype, seen, procs_get, host) -> record, None or False\n\n"
"Writes an open event's fields into `out` as open_fields(ev, etype, out) does with the (etype, flags) entries\n"
"of `seen`, looks its process up as procs_get(f\"{host}|{pid}\") (HostState.proc) and writes proc.name and\n"
"container.id of that record as name_and_container does; returns the record (or None). False, with `out`\n"
"untouched, for anything but the wire's shapes or a flags combination not yet in `seen`.");

/* f"{host}|{pid}" for an exact int pid: the process table's key (processor/state.py proc_key) */
static PyObject *proc_key(PyObject *host, PyObject *pid) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(pid, &overflow);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (overflow || !PyUnicode_IS_COMPACT_ASCII(host)) return PyUnicode_FromFormat("%U|%S", host, pid);
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", v);
    Py_ssize_t hlen = PyUnicode_GET_LENGTH(host);
    PyObject *key = PyUnicode_New(hlen + 1 + n, 127);
    if (key == NULL) return NULL;
    char *data = (char *)PyUnicode_DATA(key);
    memcpy(data, PyUnicode_DATA(host), (size_t)hlen);
    data[hlen] = '|';
    memcpy(data + hlen + 1, digits, (size_t)n);
    return key;
}

static PyObject *seed(PyObject *self, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "seed(out, ev, etype, seen, procs_get, host)");
        return NULL;
    }
    PyObject *out = a[0], *ev = a[1], *etype = a[2], *seen = a[3], *procs_get = a[4], *host = a[5];
    if (!PyDict_Check(out) || !PyDict_CheckExact(ev) || !PyDict_CheckExact(seen) || !PyUnicode_Check(host))
        Py_RETURN_FALSE;
    PyObject *pid;
    if (lookup(ev, K_pid, &pid) < 0 || pid == NULL || !PyLong_CheckExact(pid)) Py_RETURN_FALSE;
    /* p = state.proc(host, pid), first: the table read may run Python code, so nothing is borrowed across it.
     * An exception is the lookup's, as in Python. */
    PyObject *pkey = proc_key(host, pid);
    if (pkey == NULL) return NULL;
    PyObject *p = PyObject_CallOneArg(procs_get, pkey);
    Py_DECREF(pkey);
    if (p == NULL) return NULL;
    if (p != Py_None && !PyDict_CheckExact(p)) goto hand_back;

    /* a = ev.get("args") or {} */
    PyObject *args, *raw = NULL, *name = NULL, *nameraw = NULL, *res;
    if (lookup(ev, K_args, &args) < 0) goto hand_back;
    int t = truthy(args);
    if (t < 0) goto hand_back;
    if (t) {
        if (!PyDict_CheckExact(args)) goto hand_back;
        if (lookup(args, K_flags, &raw) < 0 || lookup(args, K_name, &name) < 0 ||
            lookup(args, K_nameraw, &nameraw) < 0)
            goto hand_back;
    }
    /* name = a.get("name") or None: a str, or falsy */
    t = truthy(name);
    if (t < 0) goto hand_back;
    if (!t) name = NULL;
    else if (!PyUnicode_CheckExact(name)) goto hand_back;
    if (nameraw != NULL && nameraw != Py_None && !PyUnicode_CheckExact(nameraw)) goto hand_back;
    /* res = int(ev.get("res", 0)) */
    if (lookup(ev, K_res, &res) < 0) goto hand_back;
    int res_nonneg = 1;
    if (res != NULL) {
        if (!PyLong_CheckExact(res)) goto hand_back;
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(res, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            goto hand_back;
        }
        res_nonneg = overflow > 0 || (overflow == 0 && v >= 0);
    }
    /* known = seen[(etype, raw)] */
    PyObject *key = PyTuple_Pack(2, etype, raw ? raw : Py_None);
    if (key == NULL) goto fail;
    PyObject *known;
    t = lookup(seen, key, &known);
    Py_DECREF(key);
    if (t < 0 || known == NULL) goto hand_back;  /* unhashable flags, or not computed yet: Python's path */
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2 || !PyDict_CheckExact(PyTuple_GET_ITEM(known, 0)))
        goto hand_back;
    int is_dir = PyObject_IsTrue(PyTuple_GET_ITEM(known, 1));
    if (is_dir < 0) {
        PyErr_Clear();
        goto hand_back;
    }

    /* from here on `out` is written, as the Python functions write it */
    if (PyDict_Update(out, PyTuple_GET_ITEM(known, 0)) < 0) goto fail;
    PyObject *name_v = name ? name : Py_None;
    int nameraw_t = nameraw != NULL && nameraw != Py_None && PyUnicode_GET_LENGTH(nameraw) > 0;
    if (set(out, F_fd_name, name_v) < 0 || set(out, F_fd_nameraw, nameraw_t ? nameraw : name_v) < 0 ||
        set(out, F_fd_num, res == NULL ? ZERO : (res_nonneg ? res : Py_None)) < 0)
        goto fail;
    if (name != NULL) {
        PyObject *head, *tail;
        if (rpartition_slash(name, &head, &tail) < 0) goto fail;
        PyObject *dir = is_dir ? name : (PyUnicode_GET_LENGTH(head) ? head : S_slash);
        int rc = set(out, F_fd_directory, dir);
        if (rc == 0) rc = set(out, F_fd_filename, tail);
        Py_DECREF(head);
        Py_DECREF(tail);
        if (rc < 0) goto fail;
    } else if (set(out, F_fd_directory, Py_None) < 0 || set(out, F_fd_filename, Py_None) < 0) {
        goto fail;
    }
    if (p != Py_None && PyDict_GET_SIZE(p) > 0 && seed_process(out, p) < 0) goto fail;
    return p;
hand_back:
    Py_DECREF(p);
    Py_RETURN_FALSE;
fail:
    Py_DECREF(p);
    return NULL;
}

static PyMethodDef methods[] = {
    {"seed", (PyCFunction)(void (*)(void))seed, METH_FASTCALL, seed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "processor._open_fields", "An open event's seeded fields in C (see open_fields.c).", -1,
    methods,
};

static PyObject *intern(const char *s) { return PyUnicode_InternFromString(s); }

PyMODINIT_FUNC PyInit__open_fields(void) {
    if (!(K_args = intern("args")) || !(K_pid = intern("pid")) || !(K_flags = intern("flags")) ||
        !(K_name = intern("name")) || !(K_nameraw = intern("nameraw")) || !(K_res = intern("res")) || !(K_exepath = intern("exepath")) ||
        !(K_exe = intern("exe")) || !(K_comm = intern("comm")) || !(K_container_id = intern("container_id")) ||
        !(F_fd_name = intern("fd.name")) || !(F_fd_nameraw = intern("fd.nameraw")) || !(F_fd_num = intern("fd.num")) ||
        !(F_fd_directory = intern("fd.directory")) || !(F_fd_filename = intern("fd.filename")) ||
        !(F_proc_name = intern("proc.name")) || !(F_container_id = intern("container.id")) ||
        !(S_slash = intern("/")) || !(S_host = intern("host")) || !(ZERO = PyLong_FromLong(0)))
        return NULL;
    return PyModule_Create(&module);
}
