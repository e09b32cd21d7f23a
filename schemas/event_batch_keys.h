/* The EventBatch schema as the C writer and reader (batch_writer.c, batch_reader.c) know it: the fingerprint of
 * event_batch.avsc they are written for, and its field names, interned once per module. One place, so the two
 * cannot drift apart: a schema change updates this file and both modules' field order (EVOLUTION.md). */
#ifndef PEREGRINE_EVENT_BATCH_KEYS_H
#define PEREGRINE_EVENT_BATCH_KEYS_H

#include <Python.h>

#define SCHEMA_FINGERPRINT "EventBatch:24b4687120da15fa"

static PyObject *K_hostname, *K_sensor_id, *K_batch_seq, *K_first_seq, *K_events;
static PyObject *K_ts, *K_type, *K_tid, *K_pid, *K_ppid, *K_uid, *K_gid, *K_euid, *K_loginuid, *K_comm, *K_res,
    *K_args, *K_proc;
static PyObject *K_exe, *K_exepath, *K_args_truncated, *K_cwd, *K_tty, *K_sid, *K_pgid, *K_vpid, *K_start_ts,
    *K_env, *K_container_id, *K_cap_permitted, *K_cap_effective, *K_cap_inheritable, *K_exe_from_memfd,
    *K_exe_upper_layer, *K_exe_ino_ctime, *K_exe_ino_mtime, *K_vpgid;

#define INTERN(var, name) if (!(var = PyUnicode_InternFromString(name))) return -1

/* 0, or -1 with an exception set. */
static int intern_keys(void) {
    INTERN(K_hostname, "hostname"); INTERN(K_sensor_id, "sensor_id"); INTERN(K_batch_seq, "batch_seq");
    INTERN(K_first_seq, "first_seq"); INTERN(K_events, "events");
    INTERN(K_ts, "ts"); INTERN(K_type, "type"); INTERN(K_tid, "tid"); INTERN(K_pid, "pid"); INTERN(K_ppid, "ppid");
    INTERN(K_uid, "uid"); INTERN(K_gid, "gid"); INTERN(K_euid, "euid"); INTERN(K_loginuid, "loginuid");
    INTERN(K_comm, "comm"); INTERN(K_res, "res"); INTERN(K_args, "args"); INTERN(K_proc, "proc");
    INTERN(K_exe, "exe"); INTERN(K_exepath, "exepath"); INTERN(K_args_truncated, "args_truncated");
    INTERN(K_cwd, "cwd"); INTERN(K_tty, "tty"); INTERN(K_sid, "sid"); INTERN(K_pgid, "pgid");
    INTERN(K_vpid, "vpid"); INTERN(K_start_ts, "start_ts"); INTERN(K_env, "env");
    INTERN(K_container_id, "container_id"); INTERN(K_cap_permitted, "cap_permitted");
    INTERN(K_cap_effective, "cap_effective"); INTERN(K_cap_inheritable, "cap_inheritable");
    INTERN(K_exe_from_memfd, "exe_from_memfd"); INTERN(K_exe_upper_layer, "exe_upper_layer");
    INTERN(K_exe_ino_ctime, "exe_ino_ctime"); INTERN(K_exe_ino_mtime, "exe_ino_mtime"); INTERN(K_vpgid, "vpgid");
    return 0;
}
#undef INTERN

/* The module with SCHEMA_FINGERPRINT, once the keys are interned; NULL on error. */
static PyObject *create_schema_module(PyModuleDef *def) {
    if (intern_keys() < 0) return NULL;
    PyObject *m = PyModule_Create(def);
    if (!m) return NULL;
    if (PyModule_AddStringConstant(m, "SCHEMA_FINGERPRINT", SCHEMA_FINGERPRINT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

#endif
