"""Container ids from cgroup paths, as Falco derives them (docker, containerd, cri-o, podman, kubepods)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCOPED = (
    (re.compile(r"^docker-([0-9a-f]{64})\.scope$"), "docker"),
    (re.compile(r"^cri-containerd-([0-9a-f]{64})\.scope$"), "containerd"),
    (re.compile(r"^crio-([0-9a-f]{64})\.scope$"), "cri-o"),
    (re.compile(r"^libpod-([0-9a-f]{64})\.scope$"), "podman"),
)
_BARE = re.compile(r"^([0-9a-f]{64})$")


@dataclass(frozen=True)
class ContainerRef:
    id: str  # 12 hex characters, as Falco's container.id
    type: str  # docker | containerd | cri-o | podman
    full_id: str


def _bare_runtime(parent: str) -> str:
    if parent == "docker" or parent.startswith("docker"):
        return "docker"
    if parent.startswith("libpod") or parent.startswith("machine.slice"):
        return "podman"
    if "crio" in parent:
        return "cri-o"
    if parent.startswith("pod") or parent.startswith("kubepods") or "containerd" in parent:
        return "containerd"
    return "docker"


def container_from_components(components: list[str]) -> ContainerRef | None:
    """The container named by a cgroup path given as components, root first (the leaf is searched first)."""
    for i in range(len(components) - 1, -1, -1):
        comp = components[i]
        for pattern, runtime in _SCOPED:
            m = pattern.match(comp)
            if m:
                return ContainerRef(m[1][:12], runtime, m[1])
        m = _BARE.match(comp)
        if m:
            parent = components[i - 1] if i > 0 else ""
            return ContainerRef(m[1][:12], _bare_runtime(parent), m[1])
    return None


def container_from_path(path: str) -> ContainerRef | None:
    return container_from_components([c for c in path.split("/") if c])


def container_from_proc_cgroup(text: str) -> ContainerRef | None:
    """From the contents of /proc/<pid>/cgroup (v1 and v2 lines)."""
    for line in text.splitlines():
        _hid, _, rest = line.partition(":")
        _ctrl, _, path = rest.partition(":")
        ref = container_from_path(path)
        if ref:
            return ref
    return None


def container_of_pid(pid: int) -> ContainerRef | None:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return container_from_proc_cgroup(f.read())
    except OSError:
        return None
