"""Kernel struct offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

The headers bcc compiles against are not the running kernel's (here, nor on every AKS node image), so the
BPF program never includes kernel struct definitions: every field it reads is located here at start-up and
passed in as a ``-D`` constant. The BTF format is documented in the kernel tree (Documentation/bpf/btf.rst);
this is a small pure-Python reader of the parts we need (structs, unions, enums, typedefs, pointers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

BTF_MAGIC = 0xEB9F
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD = 1, 2, 3, 4, 5, 6, 7
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO = 8, 9, 10, 11, 12, 13
KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 14, 15, 16, 17, 18, 19
_MODIFIERS = {KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}

# Bytes of kind-specific data after the 12-byte common header: (fixed, per vlen item).
_EXTRA = {
    KIND_INT: (4, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12), KIND_UNION: (0, 12), KIND_ENUM: (0, 8),
    KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0), KIND_DATASEC: (0, 12), KIND_DECL_TAG: (4, 0), KIND_ENUM64: (0, 12),
}


class BTFError(RuntimeError):
    """BTF is missing, unreadable, or lacks a field the sensor needs."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int


@dataclass
class BTF:
    """An index over one BTF blob: type records by id, and aggregates/enums by name."""

    data: bytes
    type_pos: list[int] = field(default_factory=list)  # type id -> byte position of its btf_type
    by_name: dict[str, list[int]] = field(default_factory=dict)  # struct/union/enum/typedef name -> ids
    str_base: int = 0
    str_len: int = 0
    base_str_base: int = 0  # split BTF (a module's): strings below base_str_len are the base's
    base_str_len: int = 0

    @classmethod
    def load(cls, path: Path = VMLINUX_BTF) -> BTF:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BTFError(f"{path} not found: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y is required); "
                           "run Peregrine's sensor on a kernel built with BTF (AKS/Ubuntu/Debian kernels are)") from None
        except PermissionError:
            raise BTFError(f"{path}: permission denied; run the sensor as root") from None
        return cls.parse(data, str(path))

    @classmethod
    def load_split(cls, path: Path, base: BTF) -> BTF:
        """A kernel module's BTF (/sys/kernel/btf/<module>), whose types and strings continue vmlinux's."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BTFError(f"{path}: {exc.strerror}") from None
        return cls.parse(data, str(path), base)

    @classmethod
    def parse(cls, data: bytes, where: str = "<btf>", base: BTF | None = None) -> BTF:
        if len(data) < 24:
            raise BTFError(f"{where}:0: truncated BTF header")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BTFError(f"{where}:0: bad BTF magic {magic:#x} (big-endian BTF is not supported)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        shift = 0
        if base is not None:  # one byte string holding both: base positions stay, ours move by `shift`
            shift = len(base.data)
            btf = cls(data=base.data + data, str_base=shift + hdr_len + str_off, str_len=str_len,
                      base_str_base=base.str_base, base_str_len=base.str_len)
            btf.type_pos = list(base.type_pos)
            btf.by_name = {k: list(v) for k, v in base.by_name.items()}
        else:
            btf = cls(data=data, str_base=hdr_len + str_off, str_len=str_len)
            btf.type_pos.append(-1)  # id 0 is void
        data = btf.data
        pos, end = shift + hdr_len + type_off, shift + hdr_len + type_off + type_len
        unpack = struct.Struct("<III").unpack_from
        named = {KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_TYPEDEF}
        while pos < end:
            name_off, info, _ = unpack(data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            btf.type_pos.append(pos)
            if kind in named and name_off:
                btf.by_name.setdefault(btf.string(name_off), []).append(len(btf.type_pos) - 1)
            fixed, per = _EXTRA.get(kind, (0, 0))
            pos += 12 + fixed + per * vlen
        return btf

    def string(self, off: int) -> str:
        if self.base_str_len:
            start = self.base_str_base + off if off < self.base_str_len else self.str_base + off - self.base_str_len
        else:
            start = self.str_base + off
        return self.data[start:self.data.index(b"\0", start)].decode()

    def _header(self, type_id: int) -> tuple[int, int, int, int, int]:
        """(name_off, kind, vlen, kflag, size_or_type) of a type id."""
        name_off, info, size_type = struct.unpack_from("<III", self.data, self.type_pos[type_id])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, size_type

    def kind(self, type_id: int) -> int:
        return self._header(type_id)[1]

    def strip(self, type_id: int) -> int:
        """Follow typedefs and qualifiers to the underlying type."""
        while type_id and self._header(type_id)[1] in _MODIFIERS:
            type_id = self._header(type_id)[4]
        return type_id

    def find(self, name: str, kinds: tuple[int, ...] = (KIND_STRUCT, KIND_UNION)) -> int:
        for type_id in self.by_name.get(name, []):
            if self.kind(type_id) in kinds:
                return type_id
        raise BTFError(f"kernel BTF has no {'/'.join(_KIND_NAMES.get(k, str(k)) for k in kinds)} named {name!r}")

    def members(self, type_id: int) -> list[Member]:
        _name, kind, vlen, kflag, _size = self._header(type_id)
        if kind not in (KIND_STRUCT, KIND_UNION):
            raise BTFError(f"BTF type {type_id} is not a struct or union")
        out, base = [], self.type_pos[type_id] + 12
        for i in range(vlen):
            name_off, mtype, offset = struct.unpack_from("<III", self.data, base + 12 * i)
            bits, bitsize = (offset & 0xFFFFFF, offset >> 24) if kflag else (offset, 0)
            out.append(Member(self.string(name_off) if name_off else "", mtype, bits, bitsize))
        return out

    def sizeof(self, type_id: int) -> int:
        type_id = self.strip(type_id)
        _name, kind, _vlen, _kflag, size_type = self._header(type_id)
        if kind in (KIND_STRUCT, KIND_UNION, KIND_INT, KIND_ENUM, KIND_ENUM64, KIND_FLOAT):
            return size_type
        if kind == KIND_PTR:
            return 8
        if kind == KIND_ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", self.data, self.type_pos[type_id] + 12)
            return self.sizeof(elem) * nelems
        raise BTFError(f"BTF type {type_id} (kind {kind}) has no size")

    def _member(self, type_id: int, name: str) -> tuple[int, int, int] | None:
        """(bit offset, member type id, bitfield size) of `name`, looking into anonymous members."""
        for m in self.members(type_id):
            if m.name == name:
                return m.bit_offset, m.type_id, m.bitfield_size
            if not m.name:
                inner = self.strip(m.type_id)
                if self.kind(inner) in (KIND_STRUCT, KIND_UNION):
                    found = self._member(inner, name)
                    if found:
                        return m.bit_offset + found[0], found[1], found[2]
        return None

    def field(self, struct_name: str, path: str) -> tuple[int, int]:
        """(byte offset, type id) of a member path like 'loginuid.val' or '__sk_common.skc_daddr'.

        Array elements are allowed as 'numbers[0]'. Bitfields are refused: BPF reads whole bytes.
        """
        type_id, offset = self.find(struct_name), 0
        for part in path.split("."):
            index = None
            if part.endswith("]"):
                part, _, idx = part[:-1].partition("[")
                index = int(idx)
            type_id = self.strip(type_id)
            if self.kind(type_id) not in (KIND_STRUCT, KIND_UNION):
                raise BTFError(f"kernel BTF: {struct_name}.{path}: {part!r} is not inside a struct")
            found = self._member(type_id, part)
            if found is None:
                raise BTFError(f"kernel BTF: struct {struct_name} has no member {path!r} (kernel too old or too new?)")
            bits, type_id, bitsize = found
            if bitsize or bits % 8:
                raise BTFError(f"kernel BTF: {struct_name}.{path} is a bitfield; cannot read it by offset")
            offset += bits // 8
            if index is not None:
                arr = self.strip(type_id)
                if self.kind(arr) != KIND_ARRAY:
                    raise BTFError(f"kernel BTF: {struct_name}.{path}: {part!r} is not an array")
                elem, _i, _n = struct.unpack_from("<III", self.data, self.type_pos[arr] + 12)
                offset += index * self.sizeof(elem)
                type_id = elem
        return offset, type_id

    def offsetof(self, struct_name: str, path: str) -> int:
        return self.field(struct_name, path)[0]

    def enum_value(self, enum_name: str, member: str) -> int:
        type_id = self.find(enum_name, (KIND_ENUM, KIND_ENUM64))
        _name, kind, vlen, _kflag, _size = self._header(type_id)
        base = self.type_pos[type_id] + 12
        step = 8 if kind == KIND_ENUM else 12
        for i in range(vlen):
            name_off, val = struct.unpack_from("<Ii", self.data, base + step * i)
            if self.string(name_off) == member:
                return val
        raise BTFError(f"kernel BTF: enum {enum_name} has no value {member!r}")

    def has_member(self, struct_name: str, path: str) -> bool:
        try:
            self.field(struct_name, path)
        except BTFError:
            return False
        return True


_KIND_NAMES = {KIND_STRUCT: "struct", KIND_UNION: "union", KIND_ENUM: "enum", KIND_ENUM64: "enum64"}


# The kernel fields the probe reads, as (#define name, struct, member path). Every one is resolved at start-up.
KERNEL_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("TASK_REAL_PARENT", "task_struct", "real_parent"),
    ("TASK_TI_STATUS", "task_struct", "thread_info.status"),
    ("TASK_TGID", "task_struct", "tgid"),
    ("TASK_PID", "task_struct", "pid"),
    ("TASK_LOGINUID", "task_struct", "loginuid"),
    ("TASK_SESSIONID", "task_struct", "sessionid"),
    ("TASK_CRED", "task_struct", "cred"),
    ("TASK_SIGNAL", "task_struct", "signal"),
    ("TASK_FS", "task_struct", "fs"),
    ("TASK_MM", "task_struct", "mm"),
    ("TASK_FILES", "task_struct", "files"),
    ("TASK_CGROUPS", "task_struct", "cgroups"),
    ("TASK_THREAD_PID", "task_struct", "thread_pid"),
    ("TASK_START_TIME", "task_struct", "start_time"),
    ("TASK_EXIT_CODE", "task_struct", "exit_code"),
    ("TASK_GROUP_LEADER", "task_struct", "group_leader"),
    ("TASK_FLAGS", "task_struct", "flags"),
    # The user registers saved at syscall entry: a syscall's arguments, read at its exit (x86-64 ABI order).
    ("PT_REGS_DI", "pt_regs", "di"),
    ("PT_REGS_SI", "pt_regs", "si"),
    ("PT_REGS_DX", "pt_regs", "dx"),
    ("PT_REGS_R10", "pt_regs", "r10"),
    ("PT_REGS_R8", "pt_regs", "r8"),
    ("PT_REGS_R9", "pt_regs", "r9"),
    ("PT_REGS_ORIG_AX", "pt_regs", "orig_ax"),
    ("CRED_UID", "cred", "uid"),
    ("CRED_GID", "cred", "gid"),
    ("CRED_EUID", "cred", "euid"),
    ("CRED_CAP_INHERITABLE", "cred", "cap_inheritable"),
    ("CRED_CAP_PERMITTED", "cred", "cap_permitted"),
    ("CRED_CAP_EFFECTIVE", "cred", "cap_effective"),
    ("SIGNAL_TTY", "signal_struct", "tty"),
    ("SIGNAL_PIDS", "signal_struct", "pids"),
    ("PID_LEVEL", "pid", "level"),
    ("PID_NUMBERS", "pid", "numbers"),
    ("TTY_INDEX", "tty_struct", "index"),
    ("TTY_DRIVER", "tty_struct", "driver"),
    ("TTY_DRIVER_MAJOR", "tty_driver", "major"),
    ("TTY_DRIVER_MINOR_START", "tty_driver", "minor_start"),
    ("FS_PWD", "fs_struct", "pwd"),
    ("FS_ROOT", "fs_struct", "root"),
    ("PATH_MNT", "path", "mnt"),
    ("PATH_DENTRY", "path", "dentry"),
    ("DENTRY_PARENT", "dentry", "d_parent"),
    ("DENTRY_NAME", "dentry", "d_name.name"),
    ("DENTRY_INODE", "dentry", "d_inode"),
    ("MOUNT_MNT", "mount", "mnt"),
    ("MOUNT_PARENT", "mount", "mnt_parent"),
    ("MOUNT_MOUNTPOINT", "mount", "mnt_mountpoint"),
    ("VFSMOUNT_ROOT", "vfsmount", "mnt_root"),
    ("MM_ARG_START", "mm_struct", "arg_start"),
    ("MM_ARG_END", "mm_struct", "arg_end"),
    ("MM_ENV_START", "mm_struct", "env_start"),
    ("MM_ENV_END", "mm_struct", "env_end"),
    ("MM_EXE_FILE", "mm_struct", "exe_file"),
    ("FILE_PATH", "file", "f_path"),
    ("FILE_PRIVATE", "file", "private_data"),
    ("FILES_FDT", "files_struct", "fdt"),
    ("FDT_FD", "fdtable", "fd"),
    ("FDT_MAX_FDS", "fdtable", "max_fds"),
    ("CSS_SET_DFL_CGRP", "css_set", "dfl_cgrp"),
    ("CSS_SET_SUBSYS", "css_set", "subsys"),
    ("CSS_CGROUP", "cgroup_subsys_state", "cgroup"),
    ("CGROUP_KN", "cgroup", "kn"),
    ("KERNFS_NODE_NAME", "kernfs_node", "name"),
    ("KERNFS_NODE_PARENT", "kernfs_node", "__parent"),
    ("SOCKET_SK", "socket", "sk"),
    ("SK_FAMILY", "sock", "__sk_common.skc_family"),
    ("SK_PROTOCOL", "sock", "sk_protocol"),
    ("SK_DADDR", "sock", "__sk_common.skc_daddr"),
    ("SK_RCV_SADDR", "sock", "__sk_common.skc_rcv_saddr"),
    ("SK_DPORT", "sock", "__sk_common.skc_dport"),
    ("SK_NUM", "sock", "__sk_common.skc_num"),
    ("SK_V6_DADDR", "sock", "__sk_common.skc_v6_daddr"),
    ("SK_V6_RCV_SADDR", "sock", "__sk_common.skc_v6_rcv_saddr"),
    ("INODE_MTIME", "inode", "i_mtime_sec"),
    ("INODE_CTIME", "inode", "i_ctime_sec"),
    ("INODE_INO", "inode", "i_ino"),
    ("INODE_SB", "inode", "i_sb"),
    ("SB_MAGIC", "super_block", "s_magic"),
)

# Fields whose name changed across kernel versions: alternatives tried in order.
_ALTERNATIVES: dict[tuple[str, str], tuple[str, ...]] = {
    ("kernfs_node", "__parent"): ("parent",),
    ("inode", "i_mtime_sec"): ("i_mtime.tv_sec", "__i_mtime.tv_sec"),
    ("inode", "i_ctime_sec"): ("i_ctime.tv_sec", "__i_ctime.tv_sec"),
}


# Fields the probe can do without (the define is -1 and the probe skips the read).
OPTIONAL_FIELDS = frozenset({"SK_PROTOCOL", "TASK_TI_STATUS", "TASK_LOGINUID", "TASK_SESSIONID", "INODE_MTIME", "INODE_CTIME",
                             "KERNFS_NODE_PARENT"})


def resolve_offsets(btf: BTF) -> dict[str, int]:
    """All offsets (and a few enum values) the probe needs, as #define name -> value."""
    out: dict[str, int] = {}
    for define, struct_name, path in KERNEL_FIELDS:
        candidates = (path, *_ALTERNATIVES.get((struct_name, path), ()))
        if define in OPTIONAL_FIELDS and not any(btf.has_member(struct_name, c) for c in candidates):
            out[f"OFF_{define}"] = -1
            continue
        for candidate in candidates:
            if btf.has_member(struct_name, candidate):
                out[f"OFF_{define}"] = btf.offsetof(struct_name, candidate)
                break
        else:
            out[f"OFF_{define}"] = btf.offsetof(struct_name, path)  # raises with the precise reason
    out.update(_overlay_offsets(btf))
    out["SIZEOF_UPID"] = btf.sizeof(btf.find("upid"))
    out["PIDTYPE_PGID"] = btf.enum_value("pid_type", "PIDTYPE_PGID")
    out["PIDTYPE_SID"] = btf.enum_value("pid_type", "PIDTYPE_SID")
    out["CGRP_MEMORY_ID"] = _optional_enum(btf, "cgroup_subsys_id", "memory_cgrp_id")
    out["CGRP_CPU_ID"] = _optional_enum(btf, "cgroup_subsys_id", "cpu_cgrp_id")
    out["UPID_NR"] = btf.offsetof("upid", "nr")
    return out


OVERLAY_MODULE_BTF = Path("/sys/kernel/btf/overlay")
OVERLAYFS_SUPER_MAGIC = 0x794C7630


def _overlay_offsets(btf: BTF, module_btf: Path = OVERLAY_MODULE_BTF) -> dict[str, int]:
    """Where an overlayfs inode keeps its upper dentry (proc.is_exe_upper_layer); -1 without overlayfs BTF.

    overlayfs is built into some kernels (its types are in vmlinux) and a module in others (split BTF).
    """
    source = btf
    if "ovl_inode" not in btf.by_name and module_btf.exists():
        try:
            source = BTF.load_split(module_btf, btf)
        except BTFError:
            source = btf
    try:
        vfs_inode = source.offsetof("ovl_inode", "vfs_inode")
        upper = source.offsetof("ovl_inode", "__upperdentry")
    except BTFError:
        return {"OFF_OVL_INODE_VFS_INODE": -1, "OFF_OVL_INODE_UPPER": -1, "OVERLAYFS_SUPER_MAGIC": OVERLAYFS_SUPER_MAGIC}
    return {"OFF_OVL_INODE_VFS_INODE": vfs_inode, "OFF_OVL_INODE_UPPER": upper,
            "OVERLAYFS_SUPER_MAGIC": OVERLAYFS_SUPER_MAGIC}


def _optional_enum(btf: BTF, enum_name: str, member: str) -> int:
    try:
        return btf.enum_value(enum_name, member)
    except BTFError:
        return -1


def kernel_offsets(path: Path = VMLINUX_BTF) -> dict[str, int]:
    return resolve_offsets(BTF.load(path))
