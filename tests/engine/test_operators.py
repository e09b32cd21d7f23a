"""Operator building blocks: globs, path prefixes, constants, libsinsp's regex hint."""

from __future__ import annotations

import pytest

from processor.engine.operators import (
    PathPrefixSet,
    comparable_error,
    convert_constant,
    glob_regex,
    regex_simplification_warning,
    to_bool,
    to_int,
    to_ip,
)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [("*", "/a/b", True), ("/a/*", "/a/b/c", True), ("a?c", "abc", True), ("a\\*c", "a*c", True),
     ("a\\*c", "abc", False), ("[!a]bc", "xbc", True), ("[a-c]x", "dx", False), ("[", "[", True),
     ("*.log", "x.log.1", False)],
)
def test_glob_is_fnmatch_without_pathname(pattern: str, value: str, expected: bool) -> None:
    assert (glob_regex(pattern).fullmatch(value) is not None) is expected


def test_path_prefixes() -> None:
    paths = PathPrefixSet(["/opt/dir", "/usr/*/bin", "/etc/"])
    assert paths.match("/opt/dir") and paths.match("/opt/dir/x/y") and paths.match("/etc/passwd")
    assert not paths.match("/opt/di") and not paths.match("/opt/dirt/x")
    assert paths.match("/usr/local/bin/x") and not paths.match("/usr/bin")
    assert PathPrefixSet(["/"]).match("/anything")


def test_constants() -> None:
    assert convert_constant("42", "uint64", "=") == 42
    assert convert_constant("-1", "int64", "=") == -1
    assert convert_constant("1.5", "double", ">") == 1.5
    assert convert_constant("10.0.0.1", "ipaddr", "=") == (4, 0x0A000001)
    assert convert_constant("10.0.0.0/8", "ipnet", "=") == (4, 0xFF000000, 0x0A000000)
    assert convert_constant("6869", "bytebuf", "bcontains") == b"hi"
    assert convert_constant("007", "charbuf", "=") == "007"
    with pytest.raises(ValueError, match="0x10 is not a valid number"):
        convert_constant("0x10", "uint64", "=")


def test_event_values() -> None:
    assert to_int("42") == 42 and to_int(True) == 1 and to_int("x") is None
    assert to_bool("true") is True and to_bool("FALSE") is False and to_bool("maybe") is None
    assert to_ip("::1") == (6, 1) and to_ip("bad") is None


def test_comparable() -> None:
    assert comparable_error("exists", "bytebuf", True) is None
    assert comparable_error("regex", "charbuf", False) is None
    assert comparable_error("bcontains", "bytebuf", False) is None
    assert comparable_error("glob", "bytebuf", False) == "filter error: 'glob' operator not supported for buffer filters"


@pytest.mark.parametrize(
    ("pattern", "warns"),
    [("foo", True), ("^foo$", True), (".*foo", True), ("foo.*", True), ("f.o", False), ("a|b", False),
     ("[0-9]+", False)],
)
def test_regex_hint(pattern: str, warns: bool) -> None:
    assert (regex_simplification_warning(pattern) is not None) is warns
