"""Container ids from cgroup paths, for each runtime's layout (as Falco reports them: 12 hex characters)."""

from __future__ import annotations

import pytest

from sensor.containers import container_from_path, container_from_proc_cgroup

CID = "3f4e5a6b7c8d9e0f" * 4


@pytest.mark.parametrize("path,runtime", [
    (f"/system.slice/docker-{CID}.scope", "docker"),
    (f"/docker/{CID}", "docker"),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/cri-containerd-{CID}.scope",
     "containerd"),
    (f"/kubepods/besteffort/pod12345678-aaaa-bbbb-cccc-1234567890ab/{CID}", "containerd"),
    (f"/kubepods.slice/kubepods-pod1.slice/crio-{CID}.scope", "cri-o"),
    (f"/machine.slice/libpod-{CID}.scope", "podman"),
    (f"/machine.slice/libpod-{CID}.scope/container", "podman"),
])
def test_runtime_layouts(path: str, runtime: str) -> None:
    ref = container_from_path(path)
    assert ref is not None and ref.id == CID[:12] and ref.type == runtime and ref.full_id == CID


@pytest.mark.parametrize("path", ["/", "/user.slice/user-0.slice/session-1.scope", "/system.slice/sshd.service",
                                  f"/machine.slice/libpod-conmon-{CID}.scope", "/docker/notanid"])
def test_host_cgroups_are_not_containers(path: str) -> None:
    assert container_from_path(path) is None


def test_proc_cgroup_file_v1_and_v2() -> None:
    text = f"12:memory:/docker/{CID}\n0::/\n"
    ref = container_from_proc_cgroup(text)
    assert ref is not None and ref.id == CID[:12] and ref.type == "docker"
    assert container_from_proc_cgroup("0::/init.scope\n") is None
