"""Falco's field catalogue: name, libsinsp type, argument rules; what conditions and outputs may name.

Types use libsinsp's PT_* names in lower case (charbuf, int64, uint64, bool, ipaddr, ipnet, port, ...).
Event keys are field names; a field with an argument is the key "name[arg]" and dotted arguments
(`evt.arg.flags`) are their own key. "Either side" network fields (fd.ip, fd.port, fd.net, ...) read
the client and server keys, as libsinsp matches them against both ends of the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ArgMode = Literal["none", "allowed", "required"]
ArgKind = Literal["index", "key"] | None

# libsinsp type families (filter_compare.cpp `flt_is_comparable`)
NUMERIC_TYPES = frozenset({
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "errno", "fd", "pid",
    "uid", "gid", "syscallid", "sigtype", "reltime", "abstime", "port", "flags8", "flags16", "flags32",
    "double", "mode", "enumflags8", "enumflags16", "enumflags32",
})
STRING_TYPES = frozenset({"charbuf", "fspath", "fsrelpath"})
IP_TYPES = frozenset({"ipaddr", "ipnet", "ipv4addr", "ipv4net", "ipv6addr", "ipv6net"})
BUFFER_TYPES = frozenset({"bytebuf"})
BOOL_TYPES = frozenset({"bool"})
# `dyn`: type decided by the event parameter (evt.rawarg.X): numbers compare as numbers, else strings.
DYN_TYPES = frozenset({"dyn"})


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: str
    is_list: bool = False
    arg: ArgMode = "none"
    arg_kind: ArgKind = None
    desc: str = ""
    # libsinsp EPF_NO_RHS / EPF_NO_TRANSFORMER: usable only as a plain left-hand side
    no_rhs: bool = False
    no_transformer: bool = False
    # the argument may also be written dotted: evt.arg.flags == evt.arg[flags]
    dotted_arg: bool = False
    # keys read from the event instead of `name` (either-side network fields); any of them may match
    source_keys: tuple[str, ...] = ()
    # without an argument the value is the list of every ancestor's value (proc.aname & co.)
    any_ancestor: bool = False
    # several values may hold at once (fd.sip.name: each rule name that resolves to the address): a comparison holds
    # when it holds for one of them; an output shows the first
    any_value: bool = False
    deprecated: bool = False


def _f(name: str, type_: str, desc: str = "", **kw: Any) -> FieldDef:
    return FieldDef(name, type_, desc=desc, **kw)


def _anc(name: str, type_: str, desc: str) -> FieldDef:
    return FieldDef(name, type_, arg="allowed", arg_kind="index", desc=desc, any_ancestor=True)


_PROCESS = [
    _f("proc.exe", "charbuf", "first command line argument (argv[0])"),
    _f("proc.pexe", "charbuf", "proc.exe of the parent"),
    _anc("proc.aexe", "charbuf", "proc.exe of an ancestor; [0] self, [1] parent; no index: any ancestor"),
    _f("proc.exepath", "charbuf", "full executable path"),
    _f("proc.pexepath", "charbuf", "proc.exepath of the parent"),
    _anc("proc.aexepath", "charbuf", "proc.exepath of an ancestor; no index: any ancestor"),
    _f("proc.name", "charbuf", "process name (comm, 16 chars)"),
    _f("proc.pname", "charbuf", "name of the parent"),
    _anc("proc.aname", "charbuf", "name of an ancestor; [0] self, [1] parent; no index: any ancestor"),
    _f("proc.args", "charbuf", "command line arguments excluding argv[0]"),
    _f("proc.cmdline", "charbuf", "proc.name + proc.args"),
    _f("proc.pcmdline", "charbuf", "proc.cmdline of the parent"),
    _anc("proc.acmdline", "charbuf", "proc.cmdline of an ancestor; no index: any ancestor"),
    _f("proc.cmdnargs", "uint64", "number of command line args"),
    _f("proc.cmdlenargs", "uint64", "total length of the command line args"),
    _f("proc.exeline", "charbuf", "proc.exe + proc.args"),
    _f("proc.env", "charbuf", "environment 'K=v K1=v1'; proc.env[K] is the value of K", arg="allowed", arg_kind="key"),
    _f("proc.aenv", "charbuf", "environment of ancestors", arg="allowed", arg_kind="key", any_ancestor=True),
    _f("proc.cwd", "charbuf", "current working directory"),
    _f("proc.loginshellid", "int64", "pid of the oldest shell among the ancestors"),
    _f("proc.tty", "uint32", "controlling terminal; 0 without one"),
    _f("proc.pid", "int64", "process id"),
    _f("proc.ppid", "int64", "parent process id"),
    _anc("proc.apid", "int64", "pid of an ancestor; no index: any ancestor"),
    _f("proc.vpid", "int64", "process id in its pid namespace"),
    _f("proc.pvpid", "int64", "parent process id in its pid namespace"),
    _f("proc.sid", "int64", "session id"),
    _f("proc.sname", "charbuf", "name of the session leader"),
    _f("proc.sid.exe", "charbuf", "proc.exe of the session leader"),
    _f("proc.sid.exepath", "charbuf", "proc.exepath of the session leader"),
    _f("proc.vpgid", "int64", "process group id in its pid namespace"),
    _f("proc.vpgid.name", "charbuf", "name of the process group leader"),
    _f("proc.vpgid.exe", "charbuf", "proc.exe of the process group leader"),
    _f("proc.vpgid.exepath", "charbuf", "proc.exepath of the process group leader"),
    _f("proc.duration", "reltime", "ns since the process started"),
    _f("proc.ppid.duration", "reltime", "ns since the parent started"),
    _f("proc.pid.ts", "reltime", "process start, epoch ns"),
    _f("proc.ppid.ts", "reltime", "parent start, epoch ns"),
    _f("proc.is_exe_writable", "bool", "executable writable by the user that spawned the process"),
    _f("proc.is_exe_upper_layer", "bool", "executable in the overlayfs upper layer"),
    _f("proc.is_exe_from_memfd", "bool", "executable is a memfd_create() file"),
    _f("proc.is_sid_leader", "bool", "proc.sid == proc.vpid"),
    _f("proc.is_vpgid_leader", "bool", "proc.vpgid == proc.vpid"),
    _f("proc.exe_ino", "int64", "inode of the executable"),
    _f("proc.exe_ino.ctime", "abstime", "ctime of the executable, epoch ns"),
    _f("proc.exe_ino.mtime", "abstime", "mtime of the executable, epoch ns"),
    _f("proc.exe_ino.ctime_duration_proc_start", "abstime", "ns between exe ctime and process start"),
    _f("proc.exe_ino.ctime_duration_pidns_start", "abstime", "ns between pidns start and exe ctime"),
    _f("proc.pidns_init_start_ts", "uint64", "start of the pid namespace, epoch ns"),
    _f("proc.is_container_healthcheck", "bool", "runs as the container's health check"),
    _f("proc.is_container_liveness_probe", "bool", "runs as the container's liveness probe"),
    _f("proc.is_container_readiness_probe", "bool", "runs as the container's readiness probe"),
    _f("proc.fdopencount", "uint64", "open FDs"),
    _f("proc.fdlimit", "int64", "max FDs"),
    _f("proc.fdusage", "double", "open / max FDs"),
    _f("proc.vmsize", "uint64", "virtual memory (kb)"),
    _f("proc.vmrss", "uint64", "resident memory (kb)"),
    _f("proc.vmswap", "uint64", "swapped memory (kb)"),
    _f("proc.nthreads", "uint64", "alive threads"),
    _f("proc.nchilds", "uint64", "alive non-leader threads"),
    _f("thread.cap_permitted", "charbuf", "permitted capabilities set"),
    _f("thread.cap_inheritable", "charbuf", "inheritable capabilities set"),
    _f("thread.cap_effective", "charbuf", "effective capabilities set"),
    _f("thread.pfmajor", "uint64", "major page faults"),
    _f("thread.pfminor", "uint64", "minor page faults"),
    _f("thread.tid", "int64", "thread id"),
    _f("thread.ismain", "bool", "main thread of its process"),
    _f("thread.vtid", "int64", "thread id in its pid namespace"),
    _f("thread.exectime", "reltime", "CPU time of the last scheduled thread"),
    _f("thread.totexectime", "reltime", "total CPU time of the thread"),
    _f("thread.cgroups", "charbuf", "all cgroups of the thread"),
    _f("thread.cgroup", "charbuf", "cgroup for a subsystem, e.g. thread.cgroup.cpuacct", arg="required",
       arg_kind="key", dotted_arg=True),
    _f("thread.cpu", "double", "CPU used in the last second"),
    _f("thread.cpu.user", "double", "user CPU used in the last second"),
    _f("thread.cpu.system", "double", "system CPU used in the last second"),
    _f("thread.vmsize", "uint64", "virtual memory of the main thread (kb)"),
    _f("thread.vmrss", "uint64", "resident memory of the main thread (kb)"),
]

_FD = [
    _f("fd.num", "int64", "file descriptor number"),
    _f("fd.type", "charbuf", "file, directory, ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, memfd"),
    _f("fd.typechar", "charbuf", "fd type as one character (f, 4, 6, u, p, e, s, l, i, b, r, m, o)"),
    _f("fd.name", "charbuf", "full path, or the connection tuple for sockets"),
    _f("fd.directory", "charbuf", "directory of a file fd"),
    _f("fd.filename", "charbuf", "file name without the path"),
    _f("fd.ip", "ipaddr", "client or server IP", source_keys=("fd.cip", "fd.sip")),
    _f("fd.cip", "ipaddr", "client IP"),
    _f("fd.sip", "ipaddr", "server IP"),
    _f("fd.lip", "ipaddr", "local IP"),
    _f("fd.rip", "ipaddr", "remote IP"),
    _f("fd.port", "port", "client or server port", source_keys=("fd.cport", "fd.sport")),
    _f("fd.cport", "port", "client port"),
    _f("fd.sport", "port", "server port"),
    _f("fd.lport", "port", "local port"),
    _f("fd.rport", "port", "remote port"),
    _f("fd.l4proto", "charbuf", "IP protocol: tcp, udp, icmp or raw"),
    _f("fd.sockfamily", "charbuf", "socket family: ip or unix"),
    _f("fd.is_server", "bool", "this process is the server end"),
    _f("fd.uid", "charbuf", "fd number + thread id"),
    _f("fd.containername", "charbuf", "container id + fd name"),
    _f("fd.containerdirectory", "charbuf", "container id + directory"),
    _f("fd.proto", "charbuf", "client or server protocol", source_keys=("fd.cproto", "fd.sproto")),
    _f("fd.cproto", "charbuf", "client protocol"),
    _f("fd.sproto", "charbuf", "server protocol"),
    _f("fd.lproto", "charbuf", "local protocol"),
    _f("fd.rproto", "charbuf", "remote protocol"),
    _f("fd.net", "ipnet", "client or server IP in a network", source_keys=("fd.cip", "fd.sip")),
    _f("fd.cnet", "ipnet", "client IP in a network", source_keys=("fd.cip",)),
    _f("fd.snet", "ipnet", "server IP in a network", source_keys=("fd.sip",)),
    _f("fd.lnet", "ipnet", "local IP in a network", source_keys=("fd.lip",)),
    _f("fd.rnet", "ipnet", "remote IP in a network", source_keys=("fd.rip",)),
    _f("fd.connected", "bool", "socket is connected"),
    _f("fd.name_changed", "bool", "the event changed the fd name"),
    _f("fd.cip.name", "charbuf", "domain name of the client IP (a rule's name that resolves to it)", any_value=True),
    _f("fd.sip.name", "charbuf", "domain name of the server IP (a rule's name that resolves to it)", any_value=True),
    _f("fd.lip.name", "charbuf", "domain name of the local IP (a rule's name that resolves to it)", any_value=True),
    _f("fd.rip.name", "charbuf", "domain name of the remote IP (a rule's name that resolves to it)", any_value=True),
    _f("fd.dev", "int32", "device number"),
    _f("fd.dev.major", "int32", "major device number"),
    _f("fd.dev.minor", "int32", "minor device number"),
    _f("fd.ino", "int64", "inode number"),
    _f("fd.nameraw", "charbuf", "file path as passed, not made absolute"),
    _f("fd.types", "charbuf", "types of the open fds; fd.types[N] for one fd", is_list=True, arg="allowed",
       arg_kind="index"),
]

_EVENT = [
    _f("evt.num", "uint64", "event number"),
    _f("evt.time", "charbuf", "event time, local HH:MM:SS.nnnnnnnnn"),
    _f("evt.time.s", "charbuf", "event time, HH:MM:SS"),
    _f("evt.time.iso8601", "charbuf", "event time, ISO 8601 with ns"),
    _f("evt.datetime", "charbuf", "event date and time"),
    _f("evt.datetime.s", "charbuf", "event date and time, seconds"),
    _f("evt.rawtime", "abstime", "event time, epoch ns"),
    _f("evt.rawtime.s", "abstime", "event time, epoch s"),
    _f("evt.rawtime.ns", "abstime", "event time, ns part"),
    _f("evt.reltime", "reltime", "ns since capture start"),
    _f("evt.reltime.s", "reltime", "s since capture start"),
    _f("evt.reltime.ns", "reltime", "ns part of evt.reltime"),
    _f("evt.pluginname", "charbuf", "plugin that generated the event"),
    _f("evt.plugininfo", "charbuf", "plugin event summary"),
    _f("evt.source", "charbuf", "event source (syscall, k8s_audit, ...)"),
    _f("evt.is_async", "bool", "asynchronous event"),
    _f("evt.asynctype", "charbuf", "type of an asynchronous event"),
    _f("evt.hostname", "charbuf", "host the event comes from"),
    _f("evt.latency", "reltime", "exit minus enter time", deprecated=True),
    _f("evt.latency.s", "reltime", "", deprecated=True),
    _f("evt.latency.ns", "reltime", "", deprecated=True),
    _f("evt.latency.human", "charbuf", "", deprecated=True),
    _f("evt.deltatime", "reltime", "ns since the previous event"),
    _f("evt.deltatime.s", "reltime", ""),
    _f("evt.deltatime.ns", "reltime", ""),
    _f("evt.dir", "charbuf", "'>' enter, '<' exit", deprecated=True),
    _f("evt.type", "charbuf", "event name, e.g. open"),
    _f("evt.type.is", "uint32", "1 for events of the given type (evt.type.is.open)", arg="required",
       arg_kind="key", dotted_arg=True),
    _f("syscall.type", "charbuf", "system call name; unset for non-syscall events"),
    _f("evt.category", "charbuf", "event category (file, net, memory, ...)"),
    _f("evt.cpu", "int16", "CPU number"),
    _f("evt.args", "charbuf", "all event arguments as one string"),
    _f("evt.arg", "charbuf", "one event argument by name or index: evt.arg.fd, evt.arg[0]", arg="required",
       arg_kind="key", dotted_arg=True),
    _f("evt.rawarg", "dyn", "one raw event argument by name: evt.rawarg.fd", arg="required", arg_kind="key",
       dotted_arg=True, no_rhs=True, no_transformer=True),
    _f("evt.info", "charbuf", "same as evt.args"),
    _f("evt.buffer", "bytebuf", "data buffer of I/O events"),
    _f("evt.buflen", "uint64", "length of the data buffer"),
    _f("evt.res", "charbuf", "'SUCCESS' or an error code such as ENOENT"),
    _f("evt.rawres", "int64", "return value as a number"),
    _f("evt.failed", "bool", "the event returned an error"),
    _f("evt.is_io", "bool", "reads or writes an fd"),
    _f("evt.is_io_read", "bool", "reads an fd"),
    _f("evt.is_io_write", "bool", "writes an fd"),
    _f("evt.io_dir", "charbuf", "'r' or 'w'"),
    _f("evt.is_wait", "bool", "makes the thread wait"),
    _f("evt.wait_latency", "reltime", "", deprecated=True),
    _f("evt.is_syslog", "bool", "write to /dev/log"),
    _f("evt.count", "uint32", "always 1"),
    _f("evt.count.error", "uint32", "1 for failed events"),
    _f("evt.count.error.file", "uint32", ""),
    _f("evt.count.error.net", "uint32", ""),
    _f("evt.count.error.memory", "uint32", ""),
    _f("evt.count.error.other", "uint32", ""),
    _f("evt.count.exit", "uint32", "1 for exit events"),
    _f("evt.around", "uint64", "", arg="required", arg_kind="key", no_rhs=True, no_transformer=True),
    _f("evt.abspath", "charbuf", "absolute path of *at syscalls: evt.abspath.src, evt.abspath.dst",
       arg="required", arg_kind="key", dotted_arg=True),
    _f("evt.is_open_read", "bool", "open* for reading"),
    _f("evt.is_open_write", "bool", "open* for writing"),
    _f("evt.is_open_exec", "bool", "open*/creat creating a file with execute permissions"),
    _f("evt.is_open_create", "bool", "open* creating a file"),
]

_USER_GROUP = [
    _f("user.uid", "uint32", "user id"),
    _f("user.name", "charbuf", "user name"),
    _f("user.homedir", "charbuf", "home directory"),
    _f("user.shell", "charbuf", "login shell"),
    _f("user.loginuid", "int64", "audit login uid; -1 when unset"),
    _f("user.loginname", "charbuf", "name of the login user"),
    _f("group.gid", "uint32", "group id"),
    _f("group.name", "charbuf", "group name"),
]

# Container and Kubernetes metadata (Falco's container plugin fields; built into Peregrine).
_CONTAINER = [
    _f("container.id", "charbuf", "truncated container id (12 chars); 'host' for host processes"),
    _f("container.full_id", "charbuf", "full container id"),
    _f("container.name", "charbuf", "container name"),
    _f("container.image", "charbuf", "image name, e.g. falcosecurity/falco:latest"),
    _f("container.image.id", "charbuf", "image id"),
    _f("container.type", "charbuf", "docker, cri-o, containerd, podman, lxc, ..."),
    _f("container.privileged", "bool", "runs privileged"),
    _f("container.mounts", "charbuf", "mounts as source:dest:mode:rdwr:propagation, comma separated"),
    _f("container.mount", "charbuf", "one mount by index or source path", arg="required", arg_kind="key"),
    _f("container.mount.source", "charbuf", "mount source by index or dest path", arg="required", arg_kind="key"),
    _f("container.mount.dest", "charbuf", "mount dest by index or source path", arg="required", arg_kind="key"),
    _f("container.mount.mode", "charbuf", "mount mode by index or path", arg="required", arg_kind="key"),
    _f("container.mount.rdwr", "charbuf", "mount rdwr by index or path", arg="required", arg_kind="key"),
    _f("container.mount.propagation", "charbuf", "mount propagation by index or path", arg="required",
       arg_kind="key"),
    _f("container.image.repository", "charbuf", "image repository"),
    _f("container.image.tag", "charbuf", "image tag"),
    _f("container.image.digest", "charbuf", "image digest"),
    _f("container.healthcheck", "charbuf", "health check command"),
    _f("container.liveness_probe", "charbuf", "liveness probe command"),
    _f("container.readiness_probe", "charbuf", "readiness probe command"),
    _f("container.start_ts", "abstime", "container start, epoch ns"),
    _f("container.duration", "reltime", "ns since the container started"),
    _f("container.ip", "charbuf", "container IP address"),
    _f("container.cni.json", "charbuf", "CNI result as JSON"),
    _f("container.host_pid", "bool", "shares the host pid namespace"),
    _f("container.host_network", "bool", "shares the host network namespace"),
    _f("container.host_ipc", "bool", "shares the host ipc namespace"),
    _f("container.label", "charbuf", "one container label", arg="required", arg_kind="key"),
    _f("container.labels", "charbuf", "all container labels"),
    _f("k8s.pod.name", "charbuf", "pod name"),
    _f("k8s.pod.id", "charbuf", "pod uid (legacy name)"),
    _f("k8s.pod.uid", "charbuf", "pod uid"),
    _f("k8s.pod.sandbox_id", "charbuf", "pod sandbox id (12 chars)"),
    _f("k8s.pod.full_sandbox_id", "charbuf", "pod sandbox id"),
    _f("k8s.pod.label", "charbuf", "one pod label", arg="required", arg_kind="key"),
    _f("k8s.pod.labels", "charbuf", "all pod labels"),
    _f("k8s.pod.ip", "charbuf", "pod IP"),
    _f("k8s.pod.cni.json", "charbuf", "pod CNI result as JSON"),
    _f("k8s.ns.name", "charbuf", "namespace name"),
]

FIELD_CLASSES: dict[str, list[FieldDef]] = {
    "process": _PROCESS,
    "fd": _FD,
    "evt": _EVENT,
    "user": _USER_GROUP[:6],
    "group": _USER_GROUP[6:],
    "container": _CONTAINER,
}

SYSCALL_FIELDS: dict[str, FieldDef] = {f.name: f for fields in FIELD_CLASSES.values() for f in fields}


def _ka(name: str, type_: str = "charbuf", desc: str = "", **kw: Any) -> FieldDef:
    return FieldDef(name, type_, desc=desc, **kw)


_IDX: dict[str, Any] = {"arg": "allowed", "arg_kind": "index"}
_KA_POD_CONTAINER_FIELDS = [
    ("image", "charbuf"), ("image.repository", "charbuf"), ("privileged", "bool"),
    ("host_port", "uint64"), ("add_capabilities", "charbuf"), ("allowPrivilegeEscalation", "bool"),
    ("read_write_fs", "bool"), ("run_as_user", "int64"), ("eff_run_as_user", "int64"),
    ("run_as_group", "int64"), ("eff_run_as_group", "int64"), ("proc_mount", "charbuf"),
]

K8S_AUDIT_FIELDS: dict[str, FieldDef] = {f.name: f for f in [
    _ka("jevt.time", desc="event time"), _ka("jevt.time.iso8601"), _ka("jevt.rawtime", "abstime"),
    _ka("jevt.value", desc="value at a JSON pointer: jevt.value[/user/username]", arg="required", arg_kind="key"),
    _ka("jevt.obj", desc="the whole event as JSON"),
    _ka("json.time"), _ka("json.time.iso8601"), _ka("json.rawtime", "abstime"),
    _ka("json.value", arg="required", arg_kind="key"), _ka("json.obj"),
    _ka("ka.auditid"), _ka("ka.stage"), _ka("ka.auth.decision"), _ka("ka.auth.reason"),
    _ka("ka.user.name"), _ka("ka.user.groups", is_list=True), _ka("ka.impuser.name"), _ka("ka.verb"),
    _ka("ka.uri"), _ka("ka.uri.param", arg="required", arg_kind="key"),
    _ka("ka.target.name"), _ka("ka.target.namespace"), _ka("ka.target.resource"), _ka("ka.target.subresource"),
    _ka("ka.target.pod.name"), _ka("ka.req.binding.subjects", is_list=True),
    _ka("ka.req.binding.role"), _ka("ka.req.binding.subject.has_name", arg="required", arg_kind="key"),
    _ka("ka.req.configmap.name"), _ka("ka.req.configmap.obj"),
    _ka("ka.req.pod.volumes.hostpath", is_list=True, **_IDX),
    _ka("ka.req.pod.volumes.flexvolume_driver", is_list=True, **_IDX),
    _ka("ka.req.pod.volumes.volume_type", is_list=True, **_IDX),
    _ka("ka.req.pod.host_network", "bool"), _ka("ka.req.pod.host_pid", "bool"), _ka("ka.req.pod.host_ipc", "bool"),
    _ka("ka.req.pod.run_as_user", "int64"), _ka("ka.req.pod.run_as_group", "int64"),
    _ka("ka.req.pod.supplemental_groups", is_list=True), _ka("ka.req.pod.fs_group", "int64"),
    _ka("ka.req.pod.containers.image", is_list=True, **_IDX),
    _ka("ka.req.container.image"), _ka("ka.req.container.image.repository"),
    _ka("ka.req.container.host_network", "bool"), _ka("ka.req.container.privileged", "bool"),
    _ka("ka.req.role.rules", is_list=True), _ka("ka.req.role.rules.apiGroups", is_list=True, **_IDX),
    _ka("ka.req.role.rules.nonResourceURLs", is_list=True, **_IDX),
    _ka("ka.req.role.rules.verbs", is_list=True, **_IDX), _ka("ka.req.role.rules.resources", is_list=True, **_IDX),
    _ka("ka.req.service.type"), _ka("ka.req.service.ports", is_list=True, **_IDX),
    _ka("ka.req.volume.hostpath", arg="required", arg_kind="key"),
    _ka("ka.req.volume_mount.hostpath", arg="required", arg_kind="key"),
    _ka("ka.resp.name"), _ka("ka.response.code"), _ka("ka.response.reason"), _ka("ka.useragent"),
    _ka("ka.sourceips", is_list=True, **_IDX), _ka("ka.cluster.name"),
    *[
        _ka(f"ka.req.pod.{kind}.{suffix}", "charbuf" if typ in ("int64", "uint64") else typ, is_list=True, **_IDX)
        for kind in ("containers", "initContainers", "ephemeralContainers")
        for suffix, typ in _KA_POD_CONTAINER_FIELDS
        if not (kind == "containers" and suffix == "image")
    ],
]}

FIELDS_BY_SOURCE: dict[str, dict[str, FieldDef]] = {"syscall": SYSCALL_FIELDS, "k8s_audit": K8S_AUDIT_FIELDS}

# Fields of every source (libsinsp FL_GENERIC: evt.num, evt.time*, evt.source, evt.hostname, ...)
_GENERIC = {n: SYSCALL_FIELDS[n] for n in (
    "evt.num", "evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s", "evt.rawtime",
    "evt.rawtime.s", "evt.rawtime.ns", "evt.reltime", "evt.reltime.s", "evt.reltime.ns", "evt.pluginname",
    "evt.plugininfo", "evt.source", "evt.is_async", "evt.asynctype", "evt.hostname",
)}

_DOTTED = {source: sorted((f.name for f in table.values() if f.dotted_arg), key=len, reverse=True)
           for source, table in FIELDS_BY_SOURCE.items()}


def split_dotted(name: str, source: str = "syscall") -> tuple[FieldDef, str] | None:
    """`evt.arg.flags` -> (evt.arg, "flags") for fields whose argument may be written dotted."""
    table = FIELDS_BY_SOURCE.get(source, {})
    for prefix in _DOTTED.get(source, ()):
        if name.startswith(prefix) and len(name) > len(prefix) + 1 and name[len(prefix)] == ".":
            return table[prefix], name[len(prefix) + 1:]
    return None


def lookup_field(name: str, source: str = "syscall") -> FieldDef | None:
    """The definition of a field as written in a condition (dotted-argument forms included)."""
    table = FIELDS_BY_SOURCE.get(source)
    if table is None:
        return _GENERIC.get(name)
    found = table.get(name)
    if found is not None:
        return found
    if source != "syscall" and name in _GENERIC:
        return _GENERIC[name]
    dotted = split_dotted(name, source)
    return dotted[0] if dotted else None


def known_sources() -> frozenset[str]:
    return frozenset(FIELDS_BY_SOURCE)
