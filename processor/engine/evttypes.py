"""Event types of syscall rules: libsinsp's event names and Falco's set algebra over `evt.type` checks.

Falco indexes each rule by the event types its condition can match (libsinsp filter/ppm_codes.cpp):
`and` intersects, `or` unites, `not` is pushed to the leaves (De Morgan), `evt.type` checks with
`= == != in` give explicit sets, everything else matches all types. `evt.num = 0` (Falco's `never_true`
idiom) matches nothing. None stands for "all event types".
"""

from __future__ import annotations

from processor.engine.ast import (
    And,
    Check,
    FieldRef,
    FieldValue,
    Identifier,
    ListValue,
    Node,
    Not,
    Or,
    StrValue,
    walk,
)

# Linux syscall names (x86_64 table, plus the other architectures' names libsinsp knows).
_SYSCALLS = """
    _sysctl accept accept4 access acct add_key adjtimex afs_syscall alarm arch_prctl bind bpf brk
    capget capset chdir chmod chown chroot clock_adjtime clock_getres clock_gettime clock_nanosleep
    clock_settime clone clone3 close close_range connect copy_file_range creat create_module
    delete_module dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait
    epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat
    faccessat2 fadvise64 fallocate fanotify_init fanotify_mark fchdir fchmod fchmodat fchown fchownat
    fcntl fdatasync fgetxattr finit_module flistxattr flock fork fremovexattr fsconfig fsetxattr
    fsmount fsopen fspick fstat fstatfs fsync ftruncate futex futex_waitv futimesat get_kernel_syms
    get_mempolicy get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid geteuid
    getgid getgroups getitimer getpeername getpgid getpgrp getpid getpmsg getppid getpriority getrandom
    getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday getuid
    getxattr init_module inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
    io_destroy io_getevents io_pgetevents io_setup io_submit io_uring_enter io_uring_register
    io_uring_setup ioctl ioperm iopl ioprio_get ioprio_set kcmp kexec_file_load kexec_load keyctl kill
    landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lgetxattr link linkat
    listen listxattr llistxattr lookup_dcookie lremovexattr lseek lsetxattr lstat madvise mbind
    membarrier memfd_create memfd_secret migrate_pages mincore mkdir mkdirat mknod mknodat mlock mlock2
    mlockall mmap modify_ldt mount mount_setattr move_mount move_pages mprotect mq_getsetattr mq_notify
    mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock
    munlockall munmap name_to_handle_at nanosleep newfstatat nfsservctl open open_by_handle_at
    open_tree openat openat2 pause perf_event_open personality pidfd_getfd pidfd_open pidfd_send_signal
    pipe pipe2 pivot_root pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2
    prlimit64 process_madvise process_mrelease process_vm_readv process_vm_writev pselect6 ptrace
    putpmsg pwrite64 pwritev pwritev2 query_module quotactl quotactl_fd read readahead readlink
    readlinkat readv reboot recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat
    renameat2 request_key restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
    rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max
    sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
    sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
    seccomp security select semctl semget semop semtimedop sendfile sendmmsg sendmsg sendto
    set_mempolicy set_mempolicy_home_node set_robust_list set_thread_area set_tid_address setdomainname
    setfsgid setfsuid setgid setgroups sethostname setitimer setns setpgid setpriority setregid
    setresgid setresuid setreuid setrlimit setsid setsockopt settimeofday setuid setxattr shmat shmctl
    shmdt shmget shutdown sigaltstack signalfd signalfd4 socket socketpair splice stat statfs statx
    swapoff swapon symlink symlinkat sync sync_file_range syncfs sysfs sysinfo syslog tee tgkill time
    timer_create timer_delete timer_getoverrun timer_gettime timer_settime timerfd_create
    timerfd_gettime timerfd_settime times tkill truncate tuxcall umask umount2 uname unlink unlinkat
    unshare uselib userfaultfd ustat utime utimensat utimes vfork vhangup vmsplice vserver wait4 waitid
    write writev
    _llseek _newselect bdflush fadvise64_64 fchown32 fcntl64 fstat64 fstatat64 fstatfs64 ftruncate64
    getegid32 geteuid32 getgid32 getgroups32 getresgid32 getresuid32 getuid32 ipc lchown32 lstat64
    mmap2 nice oldfstat oldlstat oldolduname oldstat olduname pread pwrite readdir recv send sendfile64
    setfsgid32 setfsuid32 setgid32 setgroups32 setregid32 setresgid32 setresuid32 setreuid32 setuid32
    sgetmask sigaction signal sigpending sigprocmask sigreturn sigsuspend socketcall ssetmask stat64
    statfs64 stime truncate64 ugetrlimit umount waitpid renameat2 syncfs openat2 pidfd_getfd
    pidfd_open epoll_pwait2 landlock_create_ruleset memfd_secret process_mrelease futex_waitv
    cachestat fchmodat2 map_shadow_stack futex_wake futex_wait futex_requeue statmount listmount
    lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal setxattrat getxattrat listxattrat
    removexattrat open_tree_attr
"""

# libsinsp events that are not system calls (scheduler, process exit, container and internal events).
_META_EVENTS = """
    procexit switch signaldeliver page_fault procinfo drop notification infra container k8s tracer
    mesos cpu_hotplug useradded userdeleted groupadded groupdeleted pluginevent asyncevent sysdigevent
    scapevent
"""

SYSCALL_EVENT_TYPES: frozenset[str] = frozenset(_SYSCALLS.split()) | frozenset(_META_EVENTS.split())

_TYPE_FIELDS = ("evt.type", "syscall.type")
_TYPE_OPS = ("=", "==", "!=", "in")


class EventTypeError(ValueError):
    """A condition whose event types cannot be resolved (e.g. "unknown event type X")."""

    def __init__(self, message: str, pos: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def event_types(node: Node, universe: frozenset[str] = SYSCALL_EVENT_TYPES) -> frozenset[str] | None:
    """Event types the condition can match; None when it can match every type."""
    types = _visit(node, False, universe)
    return None if types == universe else types


def _visit(node: Node, negated: bool, universe: frozenset[str]) -> frozenset[str]:
    if isinstance(node, And | Or):
        intersect = isinstance(node, And) != negated
        result = universe if intersect else frozenset()
        for child in node.children:
            sub = _visit(child, negated, universe)
            result = result & sub if intersect else result | sub
        return result
    if isinstance(node, Not):
        return _visit(node.child, not negated, universe)
    if isinstance(node, Check):
        explicit = _leaf(node, universe)
        if explicit is None:  # neutral check: negation does not change it
            return universe
        return universe - explicit if negated else explicit
    if isinstance(node, Identifier):
        return universe
    raise EventTypeError(f"unexpected node {node!r}")


def _leaf(check: Check, universe: frozenset[str]) -> frozenset[str] | None:
    """The explicit set of a check on the event type (before negation), or None when neutral."""
    field = check.field
    if not isinstance(field, FieldRef):
        if any(isinstance(n, FieldRef) and n.name in _TYPE_FIELDS and n.arg is None for n in walk(field)):
            raise EventTypeError("event code search does not support `evt.type` checks with transformers",
                                 check.pos)
        return None
    if field.arg is not None:
        return None
    if field.name == "evt.num" and check.op in ("=", "==", "!=") and isinstance(check.value, StrValue):
        if check.value.text.strip() == "0":
            return universe if check.op == "!=" else frozenset()
        return None
    if field.name not in _TYPE_FIELDS:
        return None
    if check.op == "exists":
        return universe
    if check.op not in _TYPE_OPS or check.modifier is not None:
        return None
    value = check.value
    if isinstance(value, FieldValue):
        raise EventTypeError(
            "right-hand field comparisons on `evt.type` checks are not supported by event code search", check.pos)
    names = [value.text] if isinstance(value, StrValue) else [
        item.text for item in value.items if isinstance(item, StrValue)] if isinstance(value, ListValue) else []
    for name in names:
        if name not in universe:
            raise EventTypeError(f"unknown event type {name}", value.pos if value is not None else check.pos)
    selected = frozenset(names)
    return universe - selected if check.op == "!=" else selected
