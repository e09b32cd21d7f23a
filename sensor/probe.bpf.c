// Peregrine's capture probe (compiled by bcc at start-up).
//
// No kernel struct definitions are included: every kernel field is read with bpf_probe_read_kernel at an
// OFF_* offset resolved from the running kernel's BTF (sensor/btf.py), and tracepoint arguments at OFF_TP_*
// offsets read from tracefs (sensor/tracefs.py). Both arrive as -D constants.
//
// Why raw_syscalls:sys_exit and not one tracepoint per syscall: the adaptive syscall set is a BPF array filled
// from user space (one lookup per syscall), so changing the rules never re-attaches or recompiles anything, one
// attachment covers every syscall (Falco's modern probe does the same), and the per-syscall knowledge (which
// arguments are paths, sockaddrs, structs) is data in the argspec map.
// Only the exit is traced: the six arguments are the user registers the kernel saved at entry (the task's
// pt_regs, offsets from BTF), unchanged at exit, so no per-thread stash is written at entry and looked up and
// deleted at exit -- that pairing, a hash-map update, lookup and delete per traced syscall, cost as much as the
// rest of the probe. Exit reads user memory (still valid, and for accept/recvfrom only filled in then) and the
// kernel socket, builds the record in a per-CPU scratch buffer and copies it into the ring buffer in one
// bpf_ringbuf_output. Process-level events come from sched tracepoints: exec (after the new image is set up, so
// argv/exe/cwd/creds are the new ones), fork (raw tracepoint: the child task is an argument) and exit; they
// read the syscall that led there (clone's flags) from the same saved registers.

#define HDR_SIZE 136
#define DATA_MASK 0x3FFF            // blob offsets stay below 16 KiB ...
#define STR_MAX 4096                // ... and one write is at most 4 KiB (PATH_MAX)
#define SCRATCH_SIZE 32768          // > DATA_MASK + 1 + STR_MAX + NAME_MAX_; a power of two for masking
#define NAME_MAX_ 256
#define SOCKADDR_MAX 128
#define SOCKTUPLE_SIZE 40
#define RAW_STRUCT_SIZE 24
#define NR_SYSCALLS 512

// Record kinds beyond syscall numbers.
#define KIND_EXEC 1000
#define KIND_FORK 1001
#define KIND_EXIT 1002

// Blob slots (the header carries their lengths, the data follow in slot order).
#define B_STR0 0
#define B_STR1 1
#define B_STR2 2
#define B_RAW 3
#define B_SOCKADDR 4
#define B_SOCKTUPLE 5
#define B_PATH 6    // a path as dentry names, leaf first, each NUL-terminated (cwd)
#define B_PROC 0    // exec/fork: struct procinfo
#define B_FILENAME 1
#define B_ARGV 2
#define B_ENV 3
#define B_CWD 4
#define B_EXE 5
#define B_CGROUP 6
#define NBLOBS 8

// Blobs are written in slot order; the parts with loops or many branches run as tail calls (the verifier
// explores each program separately), handing over through the per-CPU scratch and walk state.
#define TAIL_SOCK 0
#define TAIL_WALK 1
#define TAIL_EXEC_END 2
#define THEN_SUBMIT 0
#define THEN_EXEC_END 1

// Loss/health counters (index into counters).
#define C_RINGBUF_FULL 0
#define C_RINGBUF_REFUSED 1         // the ring buffer refused a record it had room for, even after retries
#define C_TRUNCATED 2
#define C_DEFERRED 3                // a refused record kept on its CPU and sent ahead of that CPU's next record
#define C_SCRATCH 4
#define C_EMITTED 5
#define C_COMPAT 6
#define C_OUTPUT_RETRY 7            // a failed ring-buffer output retried (not a loss unless C_RINGBUF_FULL)
#define OUTPUT_RETRIES 256
#define REFUSED_RETRIES 1024        // retries of a record refused while the buffer had room for it
#define RETRY_HOLDOFF_NS 1000000ULL
// Tests only (Capture(fault_refuse_every=N)): every Nth record is treated as refused with room to spare, the
// kernel's rare refusal, which no workload here provokes on demand. 0 in the sensor.
#ifndef FAULT_REFUSE_EVERY
#define FAULT_REFUSE_EVERY 0
#endif
// The smallest record the ring buffer can take (its 8-byte record header + our header): with less free space
// every output fails, so a syscall exit counts its drop at once instead of reading strings and paths first.
#define RING_MIN_RECORD (HDR_SIZE + 8)
#define RING_BYTES ((u64)RINGBUF_PAGES * 4096)
// bcc 0.26 has no map.ringbuf_query(); it rewrites map.ringbuf_reserve(x) to bpf_ringbuf_reserve(<map>, x, 0),
// the only way to name the ring-buffer map here, so that call is made the query (nothing is reserved).
#define bpf_ringbuf_reserve(map, flags, zero) ((void *)bpf_ringbuf_query(map, flags))
#define TS_COMPAT 0x0002
#define PF_KTHREAD 0x00200000
#define NCOUNTERS 8

#define SPEC_ADDRLEN_PTR (1 << 20)
#define SPEC_SOCK_ARG0 (1 << 21)
#define SPEC_SOCK_RET (1 << 22)
#define SPEC_CWD (1 << 28)
#define SPEC_MSGHDR (1 << 29)
#define NONE 0xF

#define F_TRUNCATED 1
#define WAKEUP_EVERY 256

// Keeps clang from proving a value bounded and dropping the mask the verifier needs to see.
#define barrier_var(v) asm volatile("" : "+r"(v))

static __always_inline u8 *at(u8 *buf, u32 off) {
    barrier_var(off);
    off &= DATA_MASK;
    return buf + off;
}

static __always_inline u32 bounded(u32 size, u32 max_pow2) {
    barrier_var(size);
    return size & (max_pow2 - 1);
}

struct hdr {
    u64 ts;
    s64 res;
    u64 args[6];
    u32 len;
    u16 kind;
    u16 flags;
    u32 tid;
    u32 pid;
    u32 ppid;
    u32 uid;
    u32 gid;
    u32 euid;
    u32 loginuid;
    u16 blen[NBLOBS];
    u32 pad;
    char comm[16];
};

struct procinfo {
    u64 start_ts;
    u64 cap_inheritable;
    u64 cap_permitted;
    u64 cap_effective;
    u64 exe_ctime;
    u64 exe_mtime;
    u32 sid;
    u32 pgid;
    u32 vpid;
    u32 tty;
    u32 sessionid;
    u32 loginuid;
    u32 flags;  // PI_*
    u32 vpgid;  // the process group's id in the pid namespace it was made in (Falco's vpgid)
};

#define PI_EXE_OVERLAY 1
#define PI_EXE_UPPER_LAYER 2

struct scratch_t {
    u8 buf[SCRATCH_SIZE];
};

// Up to two dentry paths to walk (cwd, exe) for the walker tail call, then what follows.
struct walk_t {
    u64 dentry[2];
    u64 mnt[2];
    u64 root_dentry;
    u64 root_mnt;
    u32 slot[2];
    u32 n;
    u32 i;
    u32 off;
    u32 then;
};

BPF_ARRAY(interesting, u8, NR_SYSCALLS);
BPF_ARRAY(argspec, u32, NR_SYSCALLS);
BPF_PERCPU_ARRAY(scratch, struct scratch_t, 1);
BPF_PERCPU_ARRAY(counters, u64, NCOUNTERS);
BPF_PERCPU_ARRAY(per_kind, u64, 1024 + 8);
BPF_PERCPU_ARRAY(walkstate, struct walk_t, 1);
BPF_PROG_ARRAY(tails, 4);
// Threads inside execveat: a successful execveat's saved orig_ax reads as execve by the time the exec
// tracepoint runs (seen on 6.18), so its own enter tracepoint, which runs for no other syscall, marks it.
BPF_HASH(in_execveat, u32, u8, EXECVEAT_MAX);
BPF_PERCPU_ARRAY(ring_holdoff, u64, 1);  // no output retries on this CPU before this time (ns)
// One record per CPU that the ring buffer refused while it had room: sent before that CPU's next record.
// (The length apart: a per-CPU value can be at most 32 KiB, the record's whole room.)
struct deferred_t {
    u8 data[SCRATCH_SIZE];
};
BPF_PERCPU_ARRAY(deferred, struct deferred_t, 1);
BPF_PERCPU_ARRAY(deferred_len, u32, 1);
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

// Bytes the ring buffer can still take (a query: see the bpf_ringbuf_reserve define above).
static __always_inline u64 ring_free(void) {
    return RING_BYTES - (u64)events.ringbuf_reserve(BPF_RB_AVAIL_DATA);
}

static __always_inline void count(u32 idx) {
    u64 *c = counters.lookup(&idx);
    if (c)
        *c += 1;
}

static __always_inline u64 rd64(const void *base, long off) {
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline u32 rd32(const void *base, long off) {
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline u16 rd16(const void *base, long off) {
    u16 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline void *rdp(const void *base, long off) {
    return (void *)rd64(base, off);
}

// Direct loads through BTF-typed pointers (the current task from bpf_get_current_task_btf() and what is reached
// from it): the verifier checks each offset against the running kernel's BTF and the JIT emits a plain load
// guarded by an exception-table entry (a NULL or stale pointer reads 0) instead of a helper call. On the
// per-syscall path they took the exit program from ~670 to ~540 ns per captured event (bench/probe_cost.py);
// rare paths keep rd*().
#define LD32(p, off) (*(u32 *)((char *)(p) + (off)))
#define LD64(p, off) (*(u64 *)((char *)(p) + (off)))
#define LDP(p, off) (*(char **)((char *)(p) + (off)))

static __always_inline char *current_task_btf(void) {
    return (char *)bpf_get_current_task_btf();
}

// The current task's user registers as saved at syscall entry (orig_ax = the syscall number).
static __always_inline char *current_regs(void) {
    return (char *)bpf_task_pt_regs((struct task_struct *)bpf_get_current_task_btf());
}

// The syscall's six arguments from the saved registers (x86-64: di, si, dx, r10, r8, r9).
static __always_inline void regs_args(u64 *args) {
    char *regs = current_regs();
    args[0] = LD64(regs, OFF_PT_REGS_DI);
    args[1] = LD64(regs, OFF_PT_REGS_SI);
    args[2] = LD64(regs, OFF_PT_REGS_DX);
    args[3] = LD64(regs, OFF_PT_REGS_R10);
    args[4] = LD64(regs, OFF_PT_REGS_R8);
    args[5] = LD64(regs, OFF_PT_REGS_R9);
}

static __always_inline void fill_hdr(struct hdr *h, u16 kind) {
    u64 pt = bpf_get_current_pid_tgid();
    u64 ug = bpf_get_current_uid_gid();
    h->ts = bpf_ktime_get_boot_ns();
    h->kind = kind;
    h->flags = 0;
    h->tid = (u32)pt;
    h->pid = pt >> 32;
    h->uid = (u32)ug;
    h->gid = ug >> 32;
    char *t = current_task_btf();
    h->ppid = LD32(LDP(t, OFF_TASK_REAL_PARENT), OFF_TASK_TGID);
    h->euid = LD32(LDP(t, OFF_TASK_CRED), OFF_CRED_EUID);
#if OFF_TASK_LOGINUID >= 0
    h->loginuid = LD32(t, OFF_TASK_LOGINUID);
#else
    h->loginuid = 0xFFFFFFFF;  // no CONFIG_AUDIT: unset
#endif
    #pragma unroll
    for (int i = 0; i < NBLOBS; i++)
        h->blen[i] = 0;
    h->pad = 0;
    bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline struct hdr *get_scratch(void) {
    u32 zero = 0;
    struct scratch_t *s = scratch.lookup(&zero);
    if (!s) {
        count(C_SCRATCH);
        return 0;
    }
    return (struct hdr *)s->buf;
}

// Appends a user string as blob `slot`; returns the new offset.
static __always_inline u32 push_user_str(u8 *buf, struct hdr *h, u32 off, int slot, const void *uptr) {
    if (!uptr || off > DATA_MASK) {
        if (uptr)
            h->flags |= F_TRUNCATED;
        return off;
    }
    int n = bpf_probe_read_user_str(at(buf, off), STR_MAX, uptr);
    if (n <= 0)
        return off;
    if (n >= STR_MAX)
        h->flags |= F_TRUNCATED;
    h->blen[slot & (NBLOBS - 1)] = n;
    return off + n;
}

static __always_inline u32 push_kernel_str(u8 *buf, struct hdr *h, u32 off, int slot, const void *kptr, int max) {
    if (!kptr || off > DATA_MASK)
        return off;
    int n = bpf_probe_read_kernel_str(at(buf, off), bounded(max, STR_MAX * 2), kptr);
    if (n <= 0)
        return off;
    h->blen[slot & (NBLOBS - 1)] = n;
    return off + n;
}

// Appends raw bytes (user or kernel memory) as blob `slot`, size bounded by STR_MAX.
static __always_inline u32 push_user_bytes(u8 *buf, struct hdr *h, u32 off, int slot, const void *uptr, u32 size) {
    if (!uptr || off > DATA_MASK || size == 0)
        return off;
    if (size > STR_MAX) {
        size = STR_MAX;
        h->flags |= F_TRUNCATED;
    }
    if (bpf_probe_read_user(at(buf, off), bounded(size, STR_MAX * 2), uptr) < 0)
        return off;
    h->blen[slot & (NBLOBS - 1)] = size;
    return off + size;
}

// A path as dentry names from `dentry` up to the task's root (or the namespace's root mount), leaf first.
// The write offset lives in map memory (w->off), not a register: the verifier then sees every iteration's
// branches converge to equivalent states and prunes them (a register offset makes the states explode).
static __always_inline void walk_dentry_path(u8 *buf, struct hdr *h, struct walk_t *w, int slot, void *dentry,
                                             void *vfsmnt, void *root_dentry, void *root_mnt) {
    u32 start = w->off;
    void *mnt = (char *)vfsmnt - OFF_MOUNT_MNT;
    for (int i = 0; i < PATH_COMPONENTS_MAX; i++) {
        if (dentry == root_dentry && vfsmnt == root_mnt)
            break;
        void *mnt_root = rdp(vfsmnt, OFF_VFSMOUNT_ROOT);
        if (dentry == mnt_root) {
            void *mparent = rdp(mnt, OFF_MOUNT_PARENT);
            if (mparent == mnt || !mparent)
                break;
            dentry = rdp(mnt, OFF_MOUNT_MOUNTPOINT);
            mnt = mparent;
            vfsmnt = (char *)mnt + OFF_MOUNT_MNT;
            continue;
        }
        void *parent = rdp(dentry, OFF_DENTRY_PARENT);
        if (!parent)
            break;
        u32 o = w->off;
        if (o > DATA_MASK) {
            h->flags |= F_TRUNCATED;
            break;
        }
        void *name = rdp(dentry, OFF_DENTRY_NAME);
        int n = bpf_probe_read_kernel_str(at(buf, o), NAME_MAX_, name);
        if (n <= 0)
            break;
        w->off = o + n;
        if (parent == dentry)  // a pseudo file (memfd, pipe): its own name is the whole path
            break;
        dentry = parent;
        if (i == PATH_COMPONENTS_MAX - 1)
            h->flags |= F_TRUNCATED;
    }
    h->blen[slot & (NBLOBS - 1)] = w->off - start;
}

static __always_inline void *fd_file(void *task, u64 fd) {
    void *files = rdp(task, OFF_TASK_FILES);
    void *fdt = rdp(files, OFF_FILES_FDT);
    u32 max = rd32(fdt, OFF_FDT_MAX_FDS);
    if (fd >= max)
        return 0;
    void **arr = rdp(fdt, OFF_FDT_FD);
    return rdp(arr, fd * 8);
}

// family u16, sport u16, dport u16, protocol u16, saddr[16], daddr[16], pad to 40 (ports in host order).
static __always_inline u32 push_socktuple(u8 *buf, struct hdr *h, u32 off, void *task, u64 fd) {
    void *file = fd_file(task, fd);
    if (!file || off > DATA_MASK)
        return off;
    void *sock = rdp(file, OFF_FILE_PRIVATE);
    void *sk = rdp(sock, OFF_SOCKET_SK);
    if (!sk)
        return off;
    u8 *t = at(buf, off);
    u16 family = rd16(sk, OFF_SK_FAMILY);
    u16 dport = rd16(sk, OFF_SK_DPORT);
    u16 sport = rd16(sk, OFF_SK_NUM);
    *(u16 *)t = family;
    *(u16 *)(t + 2) = sport;
    *(u16 *)(t + 4) = (dport >> 8) | (dport << 8);
    *(u16 *)(t + 6) = OFF_SK_PROTOCOL >= 0 ? rd16(sk, OFF_SK_PROTOCOL) : 0;
    if (family == 10) {
        bpf_probe_read_kernel(t + 8, 16, (char *)sk + OFF_SK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t + 24, 16, (char *)sk + OFF_SK_V6_DADDR);
    } else {
        *(u32 *)(t + 8) = rd32(sk, OFF_SK_RCV_SADDR);
        *(u32 *)(t + 24) = rd32(sk, OFF_SK_DADDR);
    }
    h->blen[B_SOCKTUPLE] = SOCKTUPLE_SIZE;
    return off + SOCKTUPLE_SIZE;
}

// Wakes the reader only every WAKEUP_EVERY records per CPU (user space also polls on a short timer):
// a wakeup per record would cost an irq_work in the traced task for each syscall.
static __always_inline int submit(struct hdr *h, u32 off) {
    u32 len = bounded(off, SCRATCH_SIZE);
    h->len = len;
    u32 idx = C_EMITTED;
    u64 *emitted = counters.lookup(&idx);
    u64 flags = BPF_RB_NO_WAKEUP;
    if (emitted) {
        *emitted += 1;
        if ((*emitted & (WAKEUP_EVERY - 1)) == 0)
            flags = 0;
    }
    u32 zero = 0;
    u32 *dlen = deferred_len.lookup(&zero);
    if (dlen && *dlen) {  // a record refused earlier on this CPU goes first: this CPU's records stay in order
        struct deferred_t *d = deferred.lookup(&zero);
        if (d) {
            void *rec = d->data;
            if (events.ringbuf_output(rec, bounded(*dlen, SCRATCH_SIZE), 0) == 0)
                *dlen = 0;
        }
    }
    int forced = FAULT_REFUSE_EVERY && emitted && (*emitted % (FAULT_REFUSE_EVERY + !FAULT_REFUSE_EVERY)) == 0;
    int err = forced ? -28 : events.ringbuf_output(h, len, flags);  // (-ENOSPC, as a refusal returns)
    // A failed output is not always a full buffer: with the buffer nearly empty, on 6.18 (2 vCPUs) about 1
    // record in 10^5 fails at 25k records/s, returning in ~130 ns (no spinning on the ring buffer's lock), and
    // trying again at once mostly succeeds. At 300k records/s such refusals outlasted 256 retries while at most
    // 2 MB of the 16 MiB were queued. So while the buffer has room for the record, a refusal is retried up to
    // REFUSED_RETRIES times (stopping as soon as the room is gone); what is still refused waits in `deferred` for
    // this CPU's next record (n_deferred_buffer). Without room the buffer is full (the reader is behind):
    // OUTPUT_RETRIES retries, then this CPU stops retrying for RETRY_HOLDOFF_NS, so an overload costs one retry
    // burst per millisecond, not one per traced syscall.
    if (err && ring_free() >= (u64)len + 16) {
        for (int i = 0; i < REFUSED_RETRIES && err && !forced; i++) {
            count(C_OUTPUT_RETRY);
            err = events.ringbuf_output(h, len, flags);
            if (err && ring_free() < (u64)len + 16)
                break;  // the buffer filled up meanwhile: a full buffer, handled below
        }
        if (err && ring_free() >= (u64)len + 16) {
            // Still refused: kept on this CPU and sent ahead of its next record (deferred, not lost); only a
            // second refusal while one waits is a loss (n_drops_buffer_refused).
            struct deferred_t *d = deferred.lookup(&zero);
            if (!d || !dlen || *dlen) {
                count(C_RINGBUF_REFUSED);
                return err;
            }
            bpf_probe_read_kernel(d->data, len, h);
            *dlen = len;
            count(C_DEFERRED);
            err = 0;
        }
    }
    if (err) {
        u64 *holdoff = ring_holdoff.lookup(&zero);
        u64 now = bpf_ktime_get_ns();
        if (holdoff && now >= *holdoff) {
            for (int i = 0; i < OUTPUT_RETRIES && err; i++) {
                count(C_OUTPUT_RETRY);
                err = events.ringbuf_output(h, len, flags);
            }
            if (err)
                *holdoff = now + RETRY_HOLDOFF_NS;
        }
    }
    if (err) {
        count(C_RINGBUF_FULL);
        return err;
    }
    u32 k = h->kind;
    if (k < 1024 + 8) {
        u64 *c = per_kind.lookup(&k);
        if (c)
            *c += 1;
    }
    return 0;
}

int tp_sys_exit(void *ctx) {
    long id = *(long *)((char *)ctx + OFF_TP_SYS_EXIT_ID);
    if (id < 0 || id >= NR_SYSCALLS)
        return 0;
    u32 key = id;
    u8 *want = interesting.lookup(&key);
    if (!want || *want != 1)
        return 0;
    u64 pt = bpf_get_current_pid_tgid();
    if ((pt >> 32) == SELF_TGID)
        return 0;
    long ret = *(long *)((char *)ctx + OFF_TP_SYS_EXIT_RET);
    if (id == NR_EXECVEAT) {
        u32 tid = (u32)pt;
        in_execveat.delete(&tid);  // failed: the mark of a success went with its exec event
    }
    // A successful exec was already emitted by sched_process_exec (and its registers are the new image's).
    if ((id == NR_EXECVE || id == NR_EXECVEAT) && ret == 0)
        return 0;
#if OFF_TASK_TI_STATUS >= 0
    // 32-bit (ia32) tasks number their syscalls differently: their ids would be misread as x86_64 ones.
    if (LD32(current_task_btf(), OFF_TASK_TI_STATUS) & TS_COMPAT) {
        count(C_COMPAT);
        return 0;
    }
#endif
    // Shed load early when the reader is behind: under a saturating loop most exits find the buffer full, and
    // building their record (strings, path walk, output retries) only to fail is most of the probe's cost.
    if (ring_free() < RING_MIN_RECORD) {
        count(C_RINGBUF_FULL);
        return 0;
    }
    struct hdr *h = get_scratch();
    if (!h)
        return 0;
    regs_args(h->args);
    void *task = (void *)bpf_get_current_task();
    fill_hdr(h, (u16)id);
    h->res = ret;
    u8 *buf = (u8 *)h;
    u32 off = HDR_SIZE;
    u32 *specp = argspec.lookup(&key);
    u32 spec = specp ? *specp : 0;
    h->pad = spec;
    if (spec) {
        u32 a;
        a = spec & 0xF;
        if (a < 6)
            off = push_user_str(buf, h, off, B_STR0, (void *)h->args[a]);
        a = (spec >> 4) & 0xF;
        if (a < 6)
            off = push_user_str(buf, h, off, B_STR1, (void *)h->args[a]);
        a = (spec >> 8) & 0xF;
        if (a < 6)
            off = push_user_str(buf, h, off, B_STR2, (void *)h->args[a]);
        a = (spec >> 24) & 0xF;
        if (a < 6)
            off = push_user_bytes(buf, h, off, B_RAW, (void *)h->args[a], RAW_STRUCT_SIZE);
        if ((spec & (SPEC_MSGHDR | SPEC_SOCK_ARG0 | SPEC_SOCK_RET)) || ((spec >> 12) & 0xF) != NONE) {
            h->len = off;
            tails.call(ctx, TAIL_SOCK);
        } else if ((spec & SPEC_CWD) && ret == 0) {
            u32 zero = 0;
            struct walk_t *w = walkstate.lookup(&zero);
            void *fs = rdp(task, OFF_TASK_FS);
            if (w && fs) {
                w->dentry[0] = rd64(fs, OFF_FS_PWD + OFF_PATH_DENTRY);
                w->mnt[0] = rd64(fs, OFF_FS_PWD + OFF_PATH_MNT);
                w->root_dentry = rd64(fs, OFF_FS_ROOT + OFF_PATH_DENTRY);
                w->root_mnt = rd64(fs, OFF_FS_ROOT + OFF_PATH_MNT);
                w->slot[0] = B_PATH;
                w->n = 1;
                w->i = 0;
                w->off = off;
                w->then = THEN_SUBMIT;
                tails.call(ctx, TAIL_WALK);
            }
        }
    }
    submit(h, off);
    return 0;
}

// Socket syscalls: the user sockaddr and the kernel socket's addresses (tail call from tp_sys_exit).
int tail_sock(void *ctx) {
    struct hdr *h = get_scratch();
    if (!h)
        return 0;
    u8 *buf = (u8 *)h;
    u32 off = h->len;
    u32 spec = h->pad;
    long ret = h->res;
    void *task = (void *)bpf_get_current_task();
    u32 a = (spec >> 12) & 0xF;
    u32 l = (spec >> 16) & 0xF;
    if (a < 6 && l < 6 && (ret >= 0 || !(spec & SPEC_ADDRLEN_PTR))) {
        u64 len = h->args[l];
        if (spec & SPEC_ADDRLEN_PTR) {
            u32 v = 0;
            if (len)
                bpf_probe_read_user(&v, sizeof(v), (void *)len);
            len = v;
        }
        if (len > SOCKADDR_MAX)
            len = SOCKADDR_MAX;
        off = push_user_bytes(buf, h, off, B_SOCKADDR, (void *)h->args[a], (u32)len);
    } else if (spec & SPEC_MSGHDR) {
        // struct user_msghdr (uapi): void *msg_name; int msg_namelen; ...
        void *msg = (void *)h->args[1];
        u64 name = 0;
        u32 namelen = 0;
        bpf_probe_read_user(&name, sizeof(name), msg);
        bpf_probe_read_user(&namelen, sizeof(namelen), (char *)msg + 8);
        if (namelen > SOCKADDR_MAX)
            namelen = SOCKADDR_MAX;
        off = push_user_bytes(buf, h, off, B_SOCKADDR, (void *)name, namelen);
    }
    if ((spec & SPEC_SOCK_ARG0) && ret != -9 && ret != -88)
        off = push_socktuple(buf, h, off, task, h->args[0]);
    else if ((spec & SPEC_SOCK_RET) && ret >= 0)
        off = push_socktuple(buf, h, off, task, (u64)ret);
    submit(h, off);
    return 0;
}

// Walks the requested dentry paths one per call (tail-calling itself), then submits or finishes the exec.
int tail_walk(void *ctx) {
    u32 zero = 0;
    struct walk_t *w = walkstate.lookup(&zero);
    struct hdr *h = get_scratch();
    if (!w || !h)
        return 0;
    u32 i = w->i;
    if (i < w->n && i < 2) {
        walk_dentry_path((u8 *)h, h, w, w->slot[i & 1], (void *)w->dentry[i & 1], (void *)w->mnt[i & 1],
                         (void *)w->root_dentry, (void *)w->root_mnt);
        w->i = i + 1;
        if (i + 1 < w->n)
            tails.call(ctx, TAIL_WALK);
    }
    if (w->then == THEN_EXEC_END) {
        h->len = w->off;
        tails.call(ctx, TAIL_EXEC_END);
        return 0;
    }
    submit(h, w->off);
    return 0;
}

static __always_inline void fill_procinfo(struct procinfo *pi, void *task) {
    pi->start_ts = rd64(task, OFF_TASK_START_TIME);
    void *cred = rdp(task, OFF_TASK_CRED);
    pi->cap_inheritable = rd64(cred, OFF_CRED_CAP_INHERITABLE);
    pi->cap_permitted = rd64(cred, OFF_CRED_CAP_PERMITTED);
    pi->cap_effective = rd64(cred, OFF_CRED_CAP_EFFECTIVE);
    pi->exe_ctime = 0;
    pi->exe_mtime = 0;
    void *signal = rdp(task, OFF_TASK_SIGNAL);
    void *sidp = rdp(signal, OFF_SIGNAL_PIDS + 8 * PIDTYPE_SID);
    void *pgidp = rdp(signal, OFF_SIGNAL_PIDS + 8 * PIDTYPE_PGID);
    pi->sid = rd32(sidp, OFF_PID_NUMBERS + UPID_NR);
    pi->pgid = rd32(pgidp, OFF_PID_NUMBERS + UPID_NR);
    void *tpid = rdp(task, OFF_TASK_THREAD_PID);
    u32 level = rd32(tpid, OFF_PID_LEVEL);
    pi->vpid = rd32(tpid, OFF_PID_NUMBERS + (level & 31) * SIZEOF_UPID + UPID_NR);
    // Falco's vpgid (task_xid_vnr): the group's number in the namespace the group was made in, its deepest level.
    pi->vpgid = rd32(pgidp, OFF_PID_NUMBERS + (rd32(pgidp, OFF_PID_LEVEL) & 31) * SIZEOF_UPID + UPID_NR);
    void *tty = rdp(signal, OFF_SIGNAL_TTY);
    pi->tty = 0;
    if (tty) {
        int index = (int)rd32(tty, OFF_TTY_INDEX);
        void *drv = rdp(tty, OFF_TTY_DRIVER);
        int major = (int)rd32(drv, OFF_TTY_DRIVER_MAJOR);
        int minor = (int)rd32(drv, OFF_TTY_DRIVER_MINOR_START) + index;
        // new_encode_dev(MKDEV(major, minor)), as /proc/<pid>/stat's tty_nr.
        pi->tty = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
    }
    pi->flags = 0;
    pi->sessionid = OFF_TASK_SESSIONID >= 0 ? rd32(task, OFF_TASK_SESSIONID) : 0;
    pi->loginuid = OFF_TASK_LOGINUID >= 0 ? rd32(task, OFF_TASK_LOGINUID) : 0xFFFFFFFF;
}

// Names of the task's cgroups: the unified (v2) one and the v1 memory/cpu ones, NUL-separated, leaf name and
// its parent's (container runtimes put the id in one of the two).
static __always_inline u32 push_cgroups(u8 *buf, struct hdr *h, u32 off, void *task) {
    void *cset = rdp(task, OFF_TASK_CGROUPS);
    u32 start = off;
    void *cgrps[3];
    cgrps[0] = rdp(cset, OFF_CSS_SET_DFL_CGRP);
    cgrps[1] = 0;
    cgrps[2] = 0;
    if (CGRP_MEMORY_ID >= 0) {
        void *css = rdp(cset, OFF_CSS_SET_SUBSYS + 8 * CGRP_MEMORY_ID);
        cgrps[1] = css ? rdp(css, OFF_CSS_CGROUP) : 0;
    }
    if (CGRP_CPU_ID >= 0) {
        void *css = rdp(cset, OFF_CSS_SET_SUBSYS + 8 * CGRP_CPU_ID);
        cgrps[2] = css ? rdp(css, OFF_CSS_CGROUP) : 0;
    }
    #pragma unroll
    for (int i = 0; i < 3; i++) {
        void *kn = cgrps[i] ? rdp(cgrps[i], OFF_CGROUP_KN) : 0;
        void *knp = kn && OFF_KERNFS_NODE_PARENT >= 0 ? rdp(kn, OFF_KERNFS_NODE_PARENT) : 0;
        #pragma unroll
        for (int j = 0; j < 2; j++) {
            void *node = j == 0 ? kn : knp;
            if (off > DATA_MASK)
                break;
            u8 *dst = at(buf, off);
            int n = 0;
            if (node)
                n = bpf_probe_read_kernel_str(dst, NAME_MAX_, rdp(node, OFF_KERNFS_NODE_NAME));
            if (n <= 0) {
                dst[0] = 0;
                n = 1;
            }
            off += n;
        }
    }
    h->blen[B_CGROUP] = off - start;
    return off;
}

int tp_enter_execveat(void *ctx) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u8 one = 1;
    in_execveat.update(&tid, &one);
    return 0;
}

int tp_sched_exec(void *ctx) {
    u32 old_pid = *(u32 *)((char *)ctx + OFF_TP_EXEC_OLD_PID);
    u64 pt = bpf_get_current_pid_tgid();
    u16 kind = NR_EXECVE;
    if (in_execveat.lookup(&old_pid)) {
        kind = NR_EXECVEAT;
        in_execveat.delete(&old_pid);
    }
    u8 *want = 0;
    u32 key = kind;
    want = interesting.lookup(&key);
    if (!want || *want != 1 || (pt >> 32) == SELF_TGID)
        return 0;
    struct hdr *h = get_scratch();
    if (!h)
        return 0;
    void *task = (void *)bpf_get_current_task();
    fill_hdr(h, KIND_EXEC);
    h->res = 0;
    h->args[0] = kind;
    h->args[1] = old_pid;
    u8 *buf = (u8 *)h;
    u32 off = HDR_SIZE;
    struct procinfo *pi = (struct procinfo *)(buf + off);
    fill_procinfo(pi, task);
    void *mm = rdp(task, OFF_TASK_MM);
    void *exe = rdp(mm, OFF_MM_EXE_FILE);
    void *exe_dentry = exe ? rdp(exe, OFF_FILE_PATH + OFF_PATH_DENTRY) : 0;
    void *exe_inode = exe_dentry ? rdp(exe_dentry, OFF_DENTRY_INODE) : 0;
    if (exe_inode && OFF_INODE_CTIME >= 0 && OFF_INODE_MTIME >= 0) {
        pi->exe_ctime = rd64(exe_inode, OFF_INODE_CTIME);
        pi->exe_mtime = rd64(exe_inode, OFF_INODE_MTIME);
    }
#if OFF_OVL_INODE_UPPER >= 0
    // An executable on overlayfs (a container's rootfs) whose inode has an upper dentry was written (or
    // copied up) in the container: Falco's proc.is_exe_upper_layer.
    if (exe_inode && (u32)rd64(rdp(exe_inode, OFF_INODE_SB), OFF_SB_MAGIC) == OVERLAYFS_SUPER_MAGIC) {
        pi->flags |= PI_EXE_OVERLAY;
        if (rdp((char *)exe_inode - OFF_OVL_INODE_VFS_INODE, OFF_OVL_INODE_UPPER))
            pi->flags |= PI_EXE_UPPER_LAYER;
    }
#endif
    h->blen[B_PROC] = sizeof(struct procinfo);
    off += sizeof(struct procinfo);
    u32 loc = *(u32 *)((char *)ctx + OFF_TP_EXEC_FILENAME);
    off = push_kernel_str(buf, h, off, B_FILENAME, (char *)ctx + (loc & 0xFFFF), STR_MAX);
    u64 arg_start = rd64(mm, OFF_MM_ARG_START);
    u64 arg_end = rd64(mm, OFF_MM_ARG_END);
    if (arg_end > arg_start)
        off = push_user_bytes(buf, h, off, B_ARGV, (void *)arg_start, (u32)(arg_end - arg_start));
#if CAPTURE_ENV
    u64 env_start = rd64(mm, OFF_MM_ENV_START);
    u64 env_end = rd64(mm, OFF_MM_ENV_END);
    if (env_end > env_start)
        off = push_user_bytes(buf, h, off, B_ENV, (void *)env_start, (u32)(env_end - env_start));
#endif
    u32 zero = 0;
    struct walk_t *w = walkstate.lookup(&zero);
    void *fs = rdp(task, OFF_TASK_FS);
    if (w && fs) {
        w->dentry[0] = rd64(fs, OFF_FS_PWD + OFF_PATH_DENTRY);
        w->mnt[0] = rd64(fs, OFF_FS_PWD + OFF_PATH_MNT);
        w->slot[0] = B_CWD;
        w->dentry[1] = (u64)exe_dentry;
        w->mnt[1] = exe ? rd64(exe, OFF_FILE_PATH + OFF_PATH_MNT) : 0;
        w->slot[1] = B_EXE;
        w->root_dentry = rd64(fs, OFF_FS_ROOT + OFF_PATH_DENTRY);
        w->root_mnt = rd64(fs, OFF_FS_ROOT + OFF_PATH_MNT);
        w->n = exe_dentry ? 2 : 1;
        w->i = 0;
        w->off = off;
        w->then = THEN_EXEC_END;
        tails.call(ctx, TAIL_WALK);
    }
    h->len = off;
    tails.call(ctx, TAIL_EXEC_END);
    return 0;
}

// The end of an exec record: cgroup names (container id), then submit.
int tail_exec_end(void *ctx) {
    struct hdr *h = get_scratch();
    if (!h)
        return 0;
    void *task = (void *)bpf_get_current_task();
    u32 off = push_cgroups((u8 *)h, h, h->len, task);
    submit(h, off);
    return 0;
}

int rtp_sched_fork(struct bpf_raw_tracepoint_args *ctx) {
    void *parent = (void *)ctx->args[0];
    void *child = (void *)ctx->args[1];
    u64 pt = bpf_get_current_pid_tgid();
    if ((pt >> 32) == SELF_TGID)
        return 0;
    struct hdr *h = get_scratch();
    if (!h)
        return 0;
    // The syscall that forked, from the parent's saved registers; a kernel thread (no user registers) or a
    // kernel-made task (io_uring's workers) reads as clone without flags.
    char *regs = current_regs();
    u64 sc = LD64(regs, OFF_PT_REGS_ORIG_AX);
    u64 flags = 0;
    if (LD32(current_task_btf(), OFF_TASK_FLAGS) & PF_KTHREAD) {
        sc = NR_CLONE;
    } else if (sc == NR_CLONE3) {
        bpf_probe_read_user(&flags, sizeof(flags), (void *)LD64(regs, OFF_PT_REGS_DI));  // clone_args.flags
    } else if (sc == NR_CLONE) {
        flags = LD64(regs, OFF_PT_REGS_DI);
    } else if (sc == NR_VFORK) {
        flags = 0x4000 | 0x100;  // CLONE_VFORK | CLONE_VM
    } else if (sc != NR_FORK) {
        sc = NR_CLONE;
    }
    u32 key = sc;
    u8 *want = interesting.lookup(&key);
    if (!want || !*want)
        return 0;
    fill_hdr(h, KIND_FORK);
    u32 child_tid = rd32(child, OFF_TASK_PID);
    u32 child_tgid = rd32(child, OFF_TASK_TGID);
    h->res = child_tid;
    h->args[0] = child_tid;
    h->args[1] = child_tgid;
    h->args[2] = flags;
    h->args[3] = sc;
    h->args[4] = rd32(rdp(child, OFF_TASK_REAL_PARENT), OFF_TASK_TGID);
    h->args[5] = 0;
    u8 *buf = (u8 *)h;
    u32 off = HDR_SIZE;
    fill_procinfo((struct procinfo *)(buf + off), child);
    h->blen[B_PROC] = sizeof(struct procinfo);
    off += sizeof(struct procinfo);
    submit(h, off);
    return 0;
}

int tp_sched_exit(void *ctx) {
    u64 pt = bpf_get_current_pid_tgid();
    if ((pt >> 32) == SELF_TGID)
        return 0;
    struct hdr *h = get_scratch();
    if (!h)
        return 0;
    u32 tid = (u32)pt;
    in_execveat.delete(&tid);
    void *task = (void *)bpf_get_current_task();
    fill_hdr(h, KIND_EXIT);
    h->res = 0;
    h->args[0] = rd32(task, OFF_TASK_EXIT_CODE);
#if OFF_TP_EXIT_GROUP_DEAD >= 0
    h->args[1] = *(u8 *)((char *)ctx + OFF_TP_EXIT_GROUP_DEAD);
#else
    h->args[1] = tid == (pt >> 32);
#endif
    submit(h, HDR_SIZE);
    return 0;
}
