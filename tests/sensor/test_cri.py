"""Labels over CRI, against the real thing: a private containerd with its CRI plugin, a pod and a container made by
crictl as kubelet would make them (host network: no CNI here), the real eBPF sensor asking the runtime's socket
for the container's and the pod's labels, and the processor's fields reading them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sensor.container_runtime import ContainerMetadata, StateRoots
from sensor.containers import ContainerRef
from sensor.cri import CriClient
from sensor.metrics import ContainerLookupCollector
from tests.sensor.test_container_runtime import (
    _remove_cgroups,
    _remove_home,
    _stop_daemon,
    container_events,
    containerd_config,
)

pytestmark = pytest.mark.ebpf

IMAGE = "peregrine.test/app:1"
# Pod networking for the pods that are not host-network: Debian's CNI plugins, a bridge of our own with no address
# on the host (isGateway false), so no route or firewall rule is added; removed with the fixture.
CNI_BIN = "/usr/lib/cni"
CNI_BRIDGE = "pgcni0"
CNI_SUBNET = "10.213.77.0/24"
POD_UID = uuid.uuid4().hex
CGROUP_PARENT = f"/kubepods/besteffort/pod{POD_UID}"


def _blob(files: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    files[f"blobs/sha256/{digest[7:]}"] = data
    return {"digest": digest, "size": len(data)}


def oci_archive(rootfs: Path, name: str) -> bytes:
    """An OCI image layout tar of one uncompressed layer, as `ctr images import` takes it."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        t.add(rootfs, arcname=".")
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    layer_ref = _blob(files, layer.getvalue())
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sleep", "3600"]},
              "rootfs": {"type": "layers", "diff_ids": [layer_ref["digest"]]}}
    config_ref = _blob(files, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_ref},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_ref}]}
    manifest_ref = _blob(files, json.dumps(manifest).encode())
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_ref,
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":")[-1]},
    }]}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class CriContainerd:
    home: Path
    proc: subprocess.Popen[bytes]
    crictl_bin: str
    pods: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.home / "c.sock"

    @property
    def task_root(self) -> Path:
        return self.home / "state" / "io.containerd.runtime.v2.task"

    def crictl(self, *args: str) -> str:
        endpoint = f"unix://{self.socket}"
        proc = subprocess.run([self.crictl_bin, "--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
                               "--timeout", "20s", *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"crictl {' '.join(args)}: {proc.stderr.strip()} (log: {self.home / 'log'})")
        return proc.stdout.strip()

    def stop(self) -> None:
        for pod in self.pods:
            subprocess.run([self.crictl_bin, "--runtime-endpoint", f"unix://{self.socket}", "stopp", pod],
                           capture_output=True, timeout=60)
            subprocess.run([self.crictl_bin, "--runtime-endpoint", f"unix://{self.socket}", "rmp", "-f", pod],
                           capture_output=True, timeout=60)
        _stop_daemon(self.proc, _shims(self.home))


def _shims(home: Path) -> list[int]:
    """Shims started by this containerd (their command line names its socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and str(home).encode() in cmdline:
                found.append(int(entry.name))
    return found


def _crictl() -> str | None:
    return shutil.which("crictl") or (str(Path(sys.executable).parent / "crictl")
                                      if (Path(sys.executable).parent / "crictl").exists() else None)


@pytest.fixture(scope="module")
def cri() -> Iterator[CriContainerd]:
    if os.geteuid() != 0:
        pytest.skip("a private containerd needs root")
    crictl = _crictl()
    missing = [b for b in ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox") if not shutil.which(b)]
    if missing or crictl is None:
        pytest.skip(f"{', '.join(missing + ([] if crictl else ['crictl']))} missing: run `bash scripts/setup.sh`")
    had_run_containerd = os.path.exists("/run/containerd")
    home = Path(tempfile.mkdtemp(prefix="pg-cri-", dir="/tmp"))
    rootfs = home / "image"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy(shutil.which("busybox") or "", rootfs / "bin" / "busybox")
    for applet in ("sh", "cat", "sleep"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (home / "config.toml").write_text(containerd_config(home, f"""[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true  # this machine refuses the sandbox's oom_score_adj of -998
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{home}/cni/conf"
"""))
    (home / "cni" / "conf").mkdir(parents=True)
    (home / "cni" / "conf" / "10-pg-test.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "pg-test", "plugins": [{
            "type": "bridge", "bridge": CNI_BRIDGE, "isGateway": False, "ipMasq": False,  # no route, no iptables
            "ipam": {"type": "host-local", "ranges": [[{"subnet": CNI_SUBNET}]], "dataDir": str(home / "cni" / "ipam")},
        }]}))
    with open(home / "log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(home / "config.toml")], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    ctrd = CriContainerd(home, proc, crictl)
    try:
        deadline = time.monotonic() + 20
        while True:
            ok = subprocess.run(["ctr", "--address", str(ctrd.socket), "version"], capture_output=True).returncode == 0
            if ok:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"private containerd did not start: {(home / 'log').read_text()[-2000:]}")
            time.sleep(0.1)
        (home / "image.tar").write_bytes(oci_archive(rootfs, IMAGE))
        imported = subprocess.run(["ctr", "--address", str(ctrd.socket), "-n", "k8s.io", "images", "import",
                                   str(home / "image.tar")], capture_output=True, text=True, timeout=60)
        assert imported.returncode == 0, imported.stderr
        yield ctrd
    finally:
        ctrd.stop()
        subprocess.run(["ip", "link", "del", CNI_BRIDGE], capture_output=True)
        _remove_cgroups(POD_UID)
        if not had_run_containerd:
            shutil.rmtree("/run/containerd", ignore_errors=True)
        _remove_home(home)


@pytest.fixture(scope="module")
def capture() -> Iterator[Any]:
    from tests.sensor.helpers import started_capture

    yield from started_capture({"execve", "openat"})


def run_labelled_container(cri: CriContainerd, attempt: int = 0, host_network: bool = True) -> tuple[str, str]:
    """A host-network pod labelled app=web, tier=front, and its container "app" (label team=pay) running
    `cat /etc/hostname` then sleep: (pod sandbox id, container id). Each attempt is a new sandbox."""
    pod_config, ctr_config = cri.home / "pod.json", cri.home / "ctr.json"
    pod_config.write_text(json.dumps({
        "metadata": {"name": "web-7d9f8c-x2v4q", "namespace": "shop", "uid": POD_UID, "attempt": attempt},
        "labels": {"app": "web", "tier": "front"}, "log_directory": str(cri.home / "logs"),
        "linux": {"cgroup_parent": CGROUP_PARENT,
                  "security_context": {"namespace_options": {"network": 2 if host_network else 0}}},  # NODE / POD
    }))
    ctr_config.write_text(json.dumps({
        "metadata": {"name": "app", "attempt": attempt}, "image": {"image": IMAGE}, "labels": {"team": "pay"}, "log_path": "app.log",
        "command": ["/bin/sh", "-c", "cat /etc/hostname >/dev/null; exec sleep 60"],
    }))
    pod = cri.crictl("runp", str(pod_config))
    cri.pods.append(pod)
    cid = cri.crictl("create", pod, str(ctr_config), str(pod_config))
    cri.crictl("start", cid)
    return pod, cid


def test_pod_and_container_labels_come_from_the_runtime_over_cri(cri: CriContainerd, capture: Any) -> None:
    from processor.pipeline import process_batch
    from processor.rules_source import build_engine
    from processor.state import HostState
    from schemas.codec import decode_batch, encode_batch
    from settings.config import Config
    from tests.pipeline.helpers import batch

    client = CriClient([str(cri.home / "missing.sock"), str(cri.socket)])
    capture.decoder.containers = ContainerMetadata(StateRoots.from_mapping(
        {"containerd": str(cri.task_root), "containers_run": "", "containers_storage": "", "docker": ""}), cri=client)
    while capture.poll(0):
        pass
    pod, cid = run_labelled_container(cri)
    events = container_events(capture, cid, "sleep")

    [meta] = [e for e in events if e["type"] == "container"]
    args = meta["args"]
    assert (args["name"], args["k8s_ns"], args["k8s_pod"], args["k8s_pod_uid"]) == ("app", "shop",
                                                                                  "web-7d9f8c-x2v4q", POD_UID)
    assert json.loads(args["pod_labels"]) == {"app": "web", "tier": "front"}
    assert json.loads(args["labels"])["team"] == "pay"
    # the container joins its sandbox's namespaces by path: the host's network (a host-network pod), the pod's own
    # pid and ipc namespaces
    assert args["k8s_sandbox_id"] == pod
    assert (args["host_network"], args["host_pid"], args["host_ipc"]) == ("true", "false", "false")
    assert client.calls >= 2 and client.failures == 0  # the missing socket is skipped, not an error

    engine, report = build_engine(Config(), {"t.yaml": """
- rule: Labelled web pod runs cat
  desc: test
  condition: evt.type = execve and k8s.pod.label[app] = web and container.label[team] = pay and proc.args = /etc/hostname
  output: cat in %k8s.pod.name (labels=%k8s.pod.labels team=%container.label[team] uid=%k8s.pod.uid)
  priority: NOTICE
"""})
    assert engine is not None, report
    result = process_batch(decode_batch(encode_batch(batch("node-a", 1, events))),
                           HostState(procs={}, users={}, containers={}), engine)
    assert not result.failures, result.failures
    [alert] = result.alerts
    assert f"cat in web-7d9f8c-x2v4q (labels=app:web, tier:front team=pay uid={POD_UID})" in alert["output"]


def test_an_unknown_container_is_no_error_and_a_socket_that_is_not_cri_is_counted(cri: CriContainerd,
                                                                                  tmp_path: Path) -> None:
    import socket

    client = CriClient([str(cri.socket)])
    assert client.lookup("0" * 64) is None and client.failures == 0  # NOT_FOUND: the runtime does not run it
    assert not client.degraded
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen()  # accepts, never speaks HTTP/2: the call's deadline ends the wait
    try:
        dead = CriClient([str(tmp_path / "silent.sock")], timeout_s=0.5, backoff_s=2.0)
        started = time.monotonic()
        assert dead.lookup("0" * 64) is None and dead.failures == 1 and dead.degraded
        assert 0.4 < time.monotonic() - started < 5
        # A burst of new containers while the runtime hangs: one deadline, not one per container.
        started = time.monotonic()
        assert all(dead.lookup(f"{i:064d}") is None for i in range(1, 21))
        assert time.monotonic() - started < 0.2 and dead.skipped == 20 and dead.failures == 1 and dead.degraded
        registry = CollectorRegistry()
        registry.register(ContainerLookupCollector(ContainerMetadata(StateRoots.from_mapping(
            {"containerd": "", "containers_run": "", "containers_storage": "", "docker": ""}), cri=dead)))
        scraped = generate_latest(registry).decode()  # what /metrics shows
        assert 'peregrine_sensor_cri_calls_total{outcome="skipped"} 20.0' in scraped
        assert 'peregrine_sensor_cri_calls_total{outcome="failed"} 1.0' in scraped
        time.sleep(2.1)  # the socket is asked again after its rest
        assert dead.lookup("2" * 64) is None and dead.failures == 2
    finally:
        silent.close()


def test_labels_missed_while_the_runtime_hung_are_fetched_at_a_later_exec(cri: CriContainerd,
                                                                          tmp_path: Path) -> None:
    """The runtime's files answer at once, CRI does not: the container is announced with what the files say and
    looked up again at a later exec, when CRI answers, with its labels."""
    _pod, cid = run_labelled_container(cri, attempt=1)
    roots = StateRoots.from_mapping({"containerd": str(cri.task_root), "containers_run": "", "containers_storage": "",
                                     "docker": ""})
    ref = ContainerRef(id=cid[:12], type="containerd", full_id=cid)
    client = CriClient([str(cri.socket)], backoff_s=60.0)
    client._resting[str(cri.socket)] = time.monotonic() + 60.0  # as after a deadline passed
    meta = ContainerMetadata(roots, cri=client)
    meta.RETRY_S = 0.0
    first = meta.announce(ref)
    assert first is not None and first["name"] and "labels" not in first and client.skipped == 1
    client._resting.clear()  # the runtime answers again
    second = meta.announce(ref)
    assert second is not None and second["full_id"] == cid and "team" in second.get("labels", "")
    assert meta.announce(ref) is None  # complete now: never again


def test_a_hung_runtime_costs_the_capture_milliseconds_and_the_files_still_answer(cri: CriContainerd,
                                                                                  tmp_path: Path) -> None:
    """CRI is asked on its own thread: with a socket that accepts and never answers, announcing a container
    returns what the runtime's files say after cri_wait_s, not after the call's deadline."""
    import socket

    _pod, cid = run_labelled_container(cri, attempt=3)
    roots = StateRoots.from_mapping({"containerd": str(cri.task_root), "containers_run": "", "containers_storage": "",
                                     "docker": ""})
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen()
    meta = ContainerMetadata(roots, cri=CriClient([str(tmp_path / "silent.sock")], timeout_s=1.0))
    try:
        started = time.monotonic()
        args = meta.announce(ContainerRef(id=cid[:12], type="containerd", full_id=cid))
        took = time.monotonic() - started
        assert args is not None and args["name"] and "labels" not in args
        assert took < 0.3, f"the capture waited {took:.2f} s for a hung runtime"
        time.sleep(1.5)  # the call's deadline passes on the CRI thread
        assert meta.late() == [] and meta.cri.failures == 1  # nothing late to send; a later exec asks again
    finally:
        meta.close()
        silent.close()


def test_a_late_cri_answer_goes_out_as_a_second_meta_event(cri: CriContainerd, capture: Any) -> None:
    """cri_wait_s=0: the capture never waits, so the first meta event has the files' view and CRI's labels
    arrive in a second one, through the real probe's poll, and replace the first in the processor's table."""
    _pod, cid = run_labelled_container(cri, attempt=4)
    roots = StateRoots.from_mapping({"containerd": str(cri.task_root), "containers_run": "", "containers_storage": "",
                                     "docker": ""})
    from processor.state import HostState

    meta = ContainerMetadata(roots, cri=CriClient([str(cri.socket)]), cri_wait_s=0.0)
    capture.decoder.containers, before = meta, capture.decoder.containers
    try:
        first = meta.announce(ContainerRef(id=cid[:12], type="containerd", full_id=cid))
        assert first is not None and first["name"] and "team" not in first.get("labels", "")
        deadline = time.monotonic() + 10
        late: list[dict[str, Any]] = []
        while not late and time.monotonic() < deadline:
            late = [e for e in capture.poll(100) if e["type"] == "container" and e["args"]["full_id"] == cid]
        assert late, "the CRI answer never went out"
        [second] = late
        assert "team" in second["args"]["labels"] and second["args"]["name"] == first["name"]
        # (other containers the capture sees exec meanwhile, from earlier tests, are announced late too)
        assert meta.cri_late >= 1 and meta.announce(ContainerRef(id=cid[:12], type="containerd", full_id=cid)) is None
        state = HostState(procs={}, users={}, containers={})
        state.apply("node-a", {"type": "container", "pid": 0, "tid": 0, "args": first})
        state.apply("node-a", second)
        assert "team" in state.containers[f"node-a|{cid[:12]}"]["labels"]
    finally:
        capture.decoder.containers = before
        meta.close()


def test_the_pod_ip_comes_from_the_runtime_over_cri(cri: CriContainerd, capture: Any) -> None:
    """A pod with a network namespace of its own gets its address from CNI (a bridge and host-local IPAM); the
    sensor's container meta event carries it, and k8s.pod.ip prints it."""
    if not os.path.exists(os.path.join(CNI_BIN, "bridge")):
        pytest.skip("Debian's containernetworking-plugins missing: run `bash scripts/setup.sh`")
    from processor.pipeline import process_batch
    from processor.rules_source import build_engine
    from processor.state import HostState
    from schemas.codec import decode_batch, encode_batch
    from settings.config import Config
    from tests.pipeline.helpers import batch

    capture.decoder.containers = ContainerMetadata(StateRoots.from_mapping(
        {"containerd": str(cri.task_root), "containers_run": "", "containers_storage": "", "docker": ""}),
        cri=CriClient([str(cri.socket)]))
    while capture.poll(0):
        pass
    pod, cid = run_labelled_container(cri, attempt=2, host_network=False)
    events = container_events(capture, cid, "sleep")
    ip = json.loads(cri.crictl("inspectp", pod))["status"]["network"]["ip"]
    assert ip.startswith(CNI_SUBNET.rsplit(".", 1)[0] + "."), ip
    [meta] = [e for e in events if e["type"] == "container"]
    assert meta["args"]["pod_ip"] == ip and meta["args"]["host_network"] == "false"

    engine, report = build_engine(Config(), {"t.yaml": """
- rule: Pod reads hostname
  desc: test
  condition: evt.type = execve and proc.args = /etc/hostname and k8s.pod.label[app] = web
  output: cat in %k8s.pod.name at %k8s.pod.ip
  priority: NOTICE
"""})
    assert engine is not None, report
    result = process_batch(decode_batch(encode_batch(batch("node-a", 1, events))),
                           HostState(procs={}, users={}, containers={}), engine)
    [alert] = result.alerts
    assert f"cat in web-7d9f8c-x2v4q at {ip}" in alert["output"]
