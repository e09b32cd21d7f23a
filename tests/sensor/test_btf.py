"""BTF parsing and offset resolution against the running kernel's /sys/kernel/btf/vmlinux, and the clear errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sensor.btf import BTF, VMLINUX_BTF, BTFError, kernel_offsets, resolve_offsets
from sensor.tracefs import TracefsError, parse_format, read_format, tracepoint_offsets

needs_btf = pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="kernel without BTF")


def _mini_btf() -> bytes:
    """struct point { int x; int y; struct { long z; }; }; enum color { RED = 0, BLUE = 5 };"""
    strings = b"\0int\0point\0x\0y\0z\0long\0color\0RED\0BLUE\0"
    off = {name: strings.index(name.encode() + b"\0") for name in ("int", "point", "x", "y", "z", "long", "color",
                                                                    "RED", "BLUE")}
    types = b""
    types += struct.pack("<III", off["int"], 1 << 24, 4) + struct.pack("<I", 32)  # 1: int
    types += struct.pack("<III", off["long"], 1 << 24, 8) + struct.pack("<I", 64)  # 2: long
    types += struct.pack("<III", 0, 4 << 24 | 1, 8) + struct.pack("<III", off["z"], 2, 0)  # 3: anon struct
    types += struct.pack("<III", off["point"], 4 << 24 | 3, 16)  # 4: struct point
    types += struct.pack("<III", off["x"], 1, 0) + struct.pack("<III", off["y"], 1, 32)
    types += struct.pack("<III", 0, 3, 64)
    types += struct.pack("<III", off["color"], 6 << 24 | 2, 4)  # 5: enum color
    types += struct.pack("<Ii", off["RED"], 0) + struct.pack("<Ii", off["BLUE"], 5)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_parser_reads_members_anonymous_members_and_enums() -> None:
    btf = BTF.parse(_mini_btf())
    assert btf.offsetof("point", "x") == 0
    assert btf.offsetof("point", "y") == 4
    assert btf.offsetof("point", "z") == 8  # through the anonymous struct
    assert btf.sizeof(btf.find("point")) == 16
    assert btf.enum_value("color", "BLUE") == 5
    with pytest.raises(BTFError, match="no member 'w'"):
        btf.offsetof("point", "w")


def test_bad_or_missing_btf_is_a_clear_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(BTFError, match="bad BTF magic"):
        BTF.parse(b"\0" * 64)
    with pytest.raises(BTFError) as exc:
        BTF.load(tmp_path / "vmlinux")
    assert "no BTF" in str(exc.value) and "CONFIG_DEBUG_INFO_BTF" in str(exc.value) and "\n" not in str(exc.value)


@needs_btf
def test_running_kernel_offsets_are_resolved_and_plausible() -> None:
    offs = kernel_offsets()
    assert offs["OFF_TASK_PID"] + 4 == offs["OFF_TASK_TGID"]  # pid_t pid; pid_t tgid; are adjacent
    assert offs["OFF_CRED_UID"] < offs["OFF_CRED_EUID"]
    assert offs["OFF_PATH_MNT"] == 0 and offs["OFF_PATH_DENTRY"] == 8  # struct path { vfsmount *mnt; dentry *; }
    assert offs["PIDTYPE_SID"] > offs["PIDTYPE_PGID"]
    assert all(v >= 0 for k, v in offs.items() if k != "OFF_SK_PROTOCOL" and not k.startswith("CGRP"))


@needs_btf
def test_nested_paths_and_arrays_resolve() -> None:
    btf = BTF.load()
    name_ptr = btf.offsetof("dentry", "d_name.name")
    assert name_ptr == btf.offsetof("dentry", "d_name") + btf.offsetof("qstr", "name")
    assert btf.offsetof("pid", "numbers[1]") == btf.offsetof("pid", "numbers") + btf.sizeof(btf.find("upid"))
    assert resolve_offsets(btf) == kernel_offsets()


def test_tracefs_format_parsing() -> None:
    text = """name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;
"""
    fmt = parse_format(text, "sched", "sched_process_exec")
    assert fmt.id == 365 and fmt.field("filename").data_loc and fmt.field("pid").offset == 12
    assert fmt.field("args").size == 48
    with pytest.raises(TracefsError, match="has no field 'nope'"):
        fmt.field("nope")


@pytest.mark.skipif(not Path("/sys/kernel/tracing").exists(), reason="no tracefs mount point")
def test_running_kernel_tracepoints() -> None:
    offs = tracepoint_offsets()
    assert offs["OFF_TP_SYS_EXIT_RET"] == offs["OFF_TP_SYS_EXIT_ID"] + 8
    with pytest.raises(TracefsError, match="does not exist"):
        read_format("sched", "no_such_tracepoint")


def test_a_kernel_without_a_needed_struct_is_a_clear_error() -> None:
    with pytest.raises(BTFError, match="no struct/union named 'task_struct'"):
        resolve_offsets(BTF.parse(_mini_btf()))


def test_split_module_btf_continues_the_base_types_and_strings(tmp_path: Path) -> None:
    base = BTF.parse(_mini_btf())
    base_str_len = struct.unpack_from("<I", _mini_btf(), 20)[0]
    strings = b"\0ovl_inode\0vfs_inode\0__upperdentry\0"
    so = {n: base_str_len + strings.index(n.encode() + b"\0") for n in ("ovl_inode", "vfs_inode", "__upperdentry")}
    types = struct.pack("<III", so["ovl_inode"], 4 << 24 | 2, 24)  # id 6: struct ovl_inode
    types += struct.pack("<III", so["vfs_inode"], 4, 0)  # struct point (base id 4) at 0
    types += struct.pack("<III", so["__upperdentry"], 2, 128)  # long at byte 16
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    path = tmp_path / "overlay"
    path.write_bytes(header + types + strings)
    split = BTF.load_split(path, base)
    assert split.offsetof("ovl_inode", "__upperdentry") == 16
    assert split.offsetof("ovl_inode", "vfs_inode.y") == 4  # into a base type
    assert split.offsetof("point", "y") == 4  # base types still resolve


def test_a_kernel_older_than_the_probe_needs_is_named_with_the_version() -> None:
    from sensor.capture import kernel_too_old

    assert kernel_too_old("6.18.44-fc-v857") is None and kernel_too_old("5.15.0-1064-azure") is None
    assert kernel_too_old("5.4.0-1109-azure") == ("kernel 5.4.0-1109-azure is older than 5.15: the probe reads "
                                                  "syscall arguments with bpf_task_pt_regs (5.15+); run the sensor "
                                                  "on a newer node image")
    assert kernel_too_old("weird") is None
