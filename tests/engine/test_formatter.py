"""Output formatting: longest field that parses, [arg], widths, transformers, <NA>, typed JSON values."""

from __future__ import annotations

import pytest

from processor.engine.formatter import AppendOutput, OutputFormatError, parse_output

EVENT = {"user.name": "root", "proc.name": "Bash", "proc.cmdline": "bash -i", "proc.aname[2]": "sshd",
         "evt.arg.flags": "O_RDONLY", "proc.pid": "42", "fd.name": "/etc/shadow"}


def test_longest_field_name_that_parses() -> None:
    fmt = parse_output("(user=%user.name %proc.name) file=%fd.name. done")
    assert fmt.field_names() == ["user.name", "proc.name", "fd.name"]
    assert fmt.format(EVENT) == "(user=root Bash) file=/etc/shadow. done"


def test_arguments_dotted_arguments_and_missing_values() -> None:
    fmt = parse_output("parent=%proc.aname[2] gp=%proc.aname[3] flags=%evt.arg.flags "
                       "sock=%container.mount.dest[/var/run/docker.sock]")
    assert fmt.format(EVENT) == "parent=sshd gp=<NA> flags=O_RDONLY sock=<NA>"
    assert fmt.fields(EVENT) == {"proc.aname[2]": "sshd", "proc.aname[3]": None, "evt.arg.flags": "O_RDONLY",
                                 "container.mount.dest[/var/run/docker.sock]": None}


def test_width_pads_and_truncates() -> None:
    assert parse_output("[%6proc.name]").format(EVENT) == "[Bash  ]"
    assert parse_output("[%2proc.name]").format(EVENT) == "[Ba]"


def test_transformers() -> None:
    fmt = parse_output("%tolower(proc.name) %toupper(proc.name) %basename(fd.name)")
    assert fmt.format(EVENT) == "bash BASH shadow"
    assert fmt.fields(EVENT)["tolower(proc.name)"] == "bash"


def test_typed_values_for_json() -> None:
    fields = parse_output("pid=%proc.pid name=%proc.name").fields(EVENT)
    assert fields == {"proc.pid": 42, "proc.name": "Bash"}


def test_errors() -> None:
    with pytest.raises(OutputFormatError, match="invalid formatting token %?proc.nosuch"):
        parse_output("x=%proc.nosuch")
    with pytest.raises(OutputFormatError, match="cannot end with a %"):
        parse_output("trailing %")


def test_append_output_matching() -> None:
    entry = AppendOutput.from_config({"match": {"source": "syscall", "tags": ["shell"]}, "extra_output": "k=%proc.pid",
                                      "extra_fields": ["proc.cmdline", {"where": "%fd.name"}]})
    assert entry.matches("any", "syscall", ("shell", "mitre"))
    assert not entry.matches("any", "syscall", ("mitre",))
    assert not entry.matches("any", "k8s_audit", ("shell",))
    assert entry.text("syscall") == "k=%proc.pid"
    assert entry.fields() == {"proc.cmdline": "%proc.cmdline", "where": "%fd.name"}
    suggested = AppendOutput(suggested_output=True)
    assert suggested.text("syscall") == "container_id=%container.id container_name=%container.name"
    assert suggested.text("k8s_audit") == ""
