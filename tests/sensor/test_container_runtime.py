"""container.* metadata from the runtime's state files.

The containerd tests are real: a private containerd (its own root, state and socket under a temporary directory,
no CRI plugin, no network) runs busybox containers with `ctr run` and CRI annotations, the real eBPF sensor
captures them, and the processor formats an alert naming the container. cri-o, podman and docker do not run on
this machine: their tests write each runtime's documented file layout (labelled as such) and read it back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from sensor.container_runtime import (
    ContainerMetadata,
    StateRoots,
    process_start_ns,
    rfc3339_ns,
    split_image,
)
from sensor.containers import ContainerRef
from settings.config import SensorConfig

CID = "3f4e5a6b7c8d9e0f" * 4
Event = dict[str, Any]


def ref(runtime: str, full_id: str = CID) -> ContainerRef:
    return ContainerRef(full_id[:12], runtime, full_id)


def only(tmp: Path, **roots: str) -> StateRoots:
    """Roots that read nothing but what a test put under tmp."""
    off = {"containerd": "", "containers_run": "", "containers_storage": "", "docker": ""}
    return StateRoots.from_mapping({**off, **{k: str(tmp / v) for k, v in roots.items()}})


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data))


# --- image references, times, configuration ------------------------------------------------------------------


@pytest.mark.parametrize("image,expected", [
    ("nginx", ("nginx", "", "")),
    ("nginx:1.25", ("nginx", "1.25", "")),
    ("docker.io/library/nginx:latest", ("docker.io/library/nginx", "latest", "")),
    ("registry.example:5000/team/web:1.2", ("registry.example:5000/team/web", "1.2", "")),
    ("registry.example:5000/team/web", ("registry.example:5000/team/web", "", "")),
    ("ghcr.io/org/app@sha256:" + "ab" * 32, ("ghcr.io/org/app", "", "sha256:" + "ab" * 32)),
    ("ghcr.io/org/app:v3@sha256:" + "cd" * 32, ("ghcr.io/org/app", "v3", "sha256:" + "cd" * 32)),
])
def test_image_split_like_falco(image: str, expected: tuple[str, str, str]) -> None:
    assert split_image(image) == expected


def test_rfc3339_nano_times() -> None:
    assert rfc3339_ns("2024-05-01T10:00:00.123456789Z") == 1714557600_123456789
    assert rfc3339_ns("2024-05-01T12:00:00.5+02:00") == 1714557600_500000000
    assert rfc3339_ns("0001-01-01T00:00:00Z") == 0  # Go's zero time: not known
    assert rfc3339_ns("yesterday") == 0


def test_configured_roots_keep_the_other_defaults_and_name_unknown_keys() -> None:
    assert StateRoots.from_mapping(SensorConfig().container_state_roots) == StateRoots()
    roots = StateRoots.from_mapping({"docker": "/srv/docker/containers"})
    assert roots.docker == "/srv/docker/containers" and roots.containerd == StateRoots().containerd
    with pytest.raises(ValueError, match="container_state_roots: unknown key.*dockre"):
        StateRoots.from_mapping({"dockre": "/x"})


# --- each runtime's layout, written as the runtime writes it ----------------------------------------------------


DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"]


def oci_spec(annotations: dict[str, str], binds: list[tuple[str, str]], privileged: bool = False) -> dict[str, Any]:
    """An OCI spec as the runtimes write one; privileged as their privileged modes make it."""
    mounts = [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
              {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}]
    mounts += [{"destination": d, "type": "bind", "source": s, "options": ["rbind", "ro"]} for s, d in binds]
    caps = DEFAULT_CAPS + (["CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_BPF"] if privileged else [])
    linux = {} if privileged else {"maskedPaths": ["/proc/kcore", "/proc/keys"], "readonlyPaths": ["/proc/sys"]}
    return {"ociVersion": "1.0.2-dev", "process": {"capabilities": {"bounding": caps}}, "annotations": annotations,
            "mounts": mounts, "linux": linux}


def test_cri_o_userdata_config(tmp_path: Path) -> None:
    """Layout as CRI-O writes it (not run here): overlay-containers/<id>/userdata/config.json."""
    write_json(tmp_path / "run" / CID / "userdata" / "config.json", oci_spec({
        "io.kubernetes.cri-o.ContainerName": "k8s_api_api-5f6_prod_0f1e_0",
        "io.kubernetes.container.name": "api",
        "io.kubernetes.pod.name": "api-5f6", "io.kubernetes.pod.namespace": "prod",
        "io.kubernetes.cri-o.ImageName": "quay.io/acme/api:2.0",
        "io.kubernetes.cri-o.Created": "2024-05-01T10:00:00.123456789Z",
        "io.kubernetes.cri-o.SandboxID": "b" * 64,
        "io.kubernetes.cri-o.Labels": orjson.dumps({"io.kubernetes.pod.uid": "0f1e-uid", "team": "api"}).decode(),
    }, [("/var/lib/kubelet/pods/0f1e/volumes/cfg", "/etc/api")])
        | {"linux": {"maskedPaths": ["/proc/kcore"], "namespaces": [{"type": t} for t in ("pid", "ipc", "mount")]}})
    args = ContainerMetadata(only(tmp_path, containers_run="run")).announce(ref("cri-o"))
    assert args == {"id": CID[:12], "type": "cri-o", "full_id": CID, "name": "api", "image": "quay.io/acme/api:2.0",
                    "image_repository": "quay.io/acme/api", "image_tag": "2.0", "privileged": "false",
                    "start_ts": "1714557600123456789", "mounts": "/var/lib/kubelet/pods/0f1e/volumes/cfg:/etc/api",
                    "k8s_ns": "prod", "k8s_pod": "api-5f6", "k8s_pod_uid": "0f1e-uid", "k8s_sandbox_id": "b" * 64,
                    "host_pid": "false", "host_network": "true", "host_ipc": "false",  # no network namespace of its own
                    "labels": '{"io.kubernetes.pod.uid":"0f1e-uid","team":"api"}'}


def test_podman_spec_and_storage_index(tmp_path: Path) -> None:
    """Layout as podman writes it (not run here): the spec in userdata, names in containers/storage's index."""
    storage = tmp_path / "storage"
    write_json(storage / CID / "userdata" / "config.json",
               oci_spec({"io.container.manager": "libpod"}, [("/srv/www", "/usr/share/nginx/html")], privileged=True))
    write_json(storage / "containers.json", [
        {"id": "0" * 64, "names": ["other"], "metadata": "{}"},
        {"id": CID, "names": ["web"], "image": "e4720093a3c1",
         "metadata": orjson.dumps({"image-name": "docker.io/library/nginx:1.25", "name": "web"}).decode(),
         "created": "2024-05-01T12:00:00.5+02:00"},
    ])
    args = ContainerMetadata(only(tmp_path, containers_storage="storage")).announce(ref("podman"))
    assert args is not None
    assert (args["type"], args["name"], args["image_repository"], args["image_tag"]) == \
        ("podman", "web", "docker.io/library/nginx", "1.25")
    assert args["privileged"] == "true" and args["mounts"] == "/srv/www:/usr/share/nginx/html"
    assert args["start_ts"] == "1714557600500000000" and "k8s_ns" not in args


def test_docker_config_and_hostconfig(tmp_path: Path) -> None:
    """Layout as dockerd writes it (not run here): containers/<id>/config.v2.json + hostconfig.json."""
    write_json(tmp_path / "docker" / CID / "config.v2.json", {
        "ID": CID, "Name": "/payments", "Created": "2024-05-01T10:00:00.000000001Z",
        "Config": {"Image": "registry.example:5000/pay/api@sha256:" + "ef" * 32, "Labels": {"team": "pay"}},
        "MountPoints": {"/var/run/docker.sock": {"Source": "/var/run/docker.sock",
                                                 "Destination": "/var/run/docker.sock", "RW": True, "Type": "bind"},
                        "/data": {"Source": "/var/lib/docker/volumes/d/_data", "Destination": "/data",
                                  "Type": "volume"}},
    })
    write_json(tmp_path / "docker" / CID / "hostconfig.json", {"Privileged": True, "NetworkMode": "host",
                                                              "PidMode": "", "IpcMode": "private"})
    args = ContainerMetadata(only(tmp_path, docker="docker")).announce(ref("docker"))
    assert args is not None
    assert args["name"] == "payments" and args["privileged"] == "true" and args["type"] == "docker"
    assert args["image_repository"] == "registry.example:5000/pay/api" and "image_tag" not in args
    assert args["image_digest"] == "sha256:" + "ef" * 32
    assert args["mounts"] == "/var/lib/docker/volumes/d/_data:/data,/var/run/docker.sock:/var/run/docker.sock"
    assert args["start_ts"] == "1714557600000000001"
    assert (args["host_network"], args["host_pid"], args["host_ipc"]) == ("true", "false", "false")
    assert args["labels"] == '{"team":"pay"}'


def test_docker_through_containerd_and_a_cgroup_that_names_no_runtime(tmp_path: Path) -> None:
    """dockerd runs its containers as containerd tasks in namespace "moby": docker's own files name them; a bare
    id cgroup (here guessed "docker") whose state is containerd's is reported as containerd."""
    write_json(tmp_path / "ctrd" / "moby" / CID / "config.json", oci_spec({}, []))
    write_json(tmp_path / "docker" / CID / "config.v2.json", {"Name": "/db", "Config": {"Image": "postgres:16"}})
    args = ContainerMetadata(only(tmp_path, containerd="ctrd", docker="docker")).announce(ref("containerd"))
    assert args is not None and (args["type"], args["name"], args["image_tag"]) == ("docker", "db", "16")
    other = "ab" * 32
    write_json(tmp_path / "ctrd" / "default" / other / "config.json", oci_spec({}, [], privileged=True))
    args = ContainerMetadata(only(tmp_path, containerd="ctrd", docker="docker")).announce(ref("docker", other))
    assert args is not None and (args["type"], args["privileged"]) == ("containerd", "true")


# --- failure modes: never an exception, never a block -------------------------------------------------------------


def test_no_state_gives_id_and_type_only(tmp_path: Path) -> None:
    meta = ContainerMetadata(only(tmp_path, containerd="none", containers_run="none", docker="none"))
    assert meta.announce(ref("containerd")) == {"id": CID[:12], "type": "containerd", "full_id": CID}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"annotations": ["x"], "mounts": {"a": 1}}',
                                     b'{"process": {"capabilities": {"bounding": "ALL"}}, "mounts": [1, null]}', b'{"mounts": 5, "linux": 1}',
                                     b"\xff\xfe" * 10])
def test_malformed_state_files_never_raise(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "ctrd" / "k8s.io" / CID).mkdir(parents=True)
    (tmp_path / "ctrd" / "k8s.io" / CID / "config.json").write_bytes(content)
    (tmp_path / "docker" / CID).mkdir(parents=True)
    (tmp_path / "docker" / CID / "config.v2.json").write_bytes(content)
    (tmp_path / "docker" / CID / "hostconfig.json").write_bytes(content)
    meta = ContainerMetadata(only(tmp_path, containerd="ctrd", docker="docker"))
    args = meta.announce(ref("containerd"))
    assert args is not None and args["id"] == CID[:12] and meta.failures == 0


def test_unreadable_state_gives_id_and_type(tmp_path: Path) -> None:
    bundle = tmp_path / "ctrd" / "k8s.io" / CID
    bundle.mkdir(parents=True)
    (bundle / "config.json").mkdir()  # EISDIR on open: unreadable, as a file without permission would be
    args = ContainerMetadata(only(tmp_path, containerd="ctrd")).announce(ref("containerd"))
    assert args == {"id": CID[:12], "type": "containerd", "full_id": CID}


def test_state_that_appears_later_is_announced_once_more(tmp_path: Path) -> None:
    meta = ContainerMetadata(only(tmp_path, containerd="ctrd"))
    meta.RETRY_S = 0.0  # the retry spacing; a second in the sensor
    assert meta.announce(ref("containerd")) == {"id": CID[:12], "type": "containerd", "full_id": CID}
    assert meta.announce(ref("containerd")) is None  # still nothing: no second event
    write_json(tmp_path / "ctrd" / "k8s.io" / CID / "config.json",
               oci_spec({"io.kubernetes.cri.container-name": "late"}, []))
    args = meta.announce(ref("containerd"))
    assert args is not None and args["name"] == "late"
    assert meta.announce(ref("containerd")) is None  # complete: never again


def test_remembered_containers_are_bounded(tmp_path: Path) -> None:
    meta = ContainerMetadata(only(tmp_path), max_containers=3)
    ids = [uuid.uuid4().hex * 2 for _ in range(5)]
    for full in ids:
        assert meta.announce(ref("docker", full)) is not None
    assert len(meta._seen) == 3
    assert meta.announce(ref("docker", ids[-1])) is None  # still remembered
    assert meta.announce(ref("docker", ids[0])) is not None  # forgotten: announced again, harmlessly


def test_sensor_daemonset_mounts_every_default_root_read_only() -> None:
    from tests.deploy.manifests import K8S, by_kind, kustomize

    pod = by_kind(kustomize(K8S / "base"), "DaemonSet")["peregrine-sensor"]["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    for root in SensorConfig().container_state_roots.values():
        mount = mounts[root]  # mounted where the default configuration looks
        assert host_paths[mount["name"]] == root and mount["readOnly"] is True
    for socket in SensorConfig().cri_sockets:  # the CRI sockets' directories, where a node has them
        mount = mounts[str(Path(socket).parent)]
        assert host_paths[mount["name"]] == str(Path(socket).parent) and mount["readOnly"] is True


# --- a real containerd, the real eBPF sensor, the real processor ---------------------------------------------------


@dataclass
class Containerd:
    """A private containerd: its own root/state/socket in `home`; runc's state there too."""

    home: Path
    proc: subprocess.Popen[bytes]
    namespace: str = "k8s.io"
    started: list[str] = field(default_factory=list)
    shims: list[int] = field(default_factory=list)

    @property
    def task_root(self) -> Path:
        return self.home / "state" / "io.containerd.runtime.v2.task"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ctr", "--address", str(self.home / "c.sock"), "-n", self.namespace, *args],
                              capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {proc.stderr.strip()} (log: {self.home / 'log'})")
        return proc

    def run(self, cid: str, argv: list[str], annotations: dict[str, str], binds: list[tuple[Path, str]],
            privileged: bool = False) -> int:
        """Starts a container detached, in a kubelet-style cgroup (cgroupfs driver); returns its init pid."""
        opts = ["--null-io", "--runc-root", str(self.home / "runc"),
                "--cgroup", f"/kubepods/besteffort/pod{POD_UID}/{cid}"]
        opts += [f"--annotation={k}={v}" for k, v in annotations.items()]
        opts += [f"--mount=type=bind,src={s},dst={d},options=rbind:ro" for s, d in binds]
        opts += ["--privileged"] if privileged else []
        self.started.append(cid)
        self.ctr("run", "-d", *opts, "--rootfs", str(self.home / "rootfs"), cid, *argv)
        pid = int((self.task_root / self.namespace / cid / "init.pid").read_text())
        self.shims.append(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]))
        return pid

    def stop(self) -> None:
        for cid in self.started:
            self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
            for _ in range(50):
                if self.ctr("task", "delete", cid, check=False).returncode == 0:
                    break
                time.sleep(0.1)
            self.ctr("container", "delete", cid, check=False)
        _stop_daemon(self.proc, self.shims)  # a shim outlives its task only if the delete failed


POD_UID = uuid.uuid4().hex


def containerd_config(home: Path, cri: str = "") -> str:
    """A private containerd's config.toml: everything under `home`; the CRI plugin off unless `cri` configures it."""
    disabled = ([] if cri else ["io.containerd.grpc.v1.cri"]) + [
        f"io.containerd.snapshotter.v1.{name}" for name in ("btrfs", "zfs", "devmapper", "aufs")]
    return f"""
version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = {orjson.dumps(disabled).decode()}
[grpc]
  address = "{home}/c.sock"
[ttrpc]
  address = "{home}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{home}/opt"
{cri}"""


def _stop_daemon(proc: subprocess.Popen[bytes], shims: list[int]) -> None:
    """A private containerd and the shims it left."""
    for pid in shims:
        _kill(pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _mounted_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == str(path) or point.startswith(f"{path}/"):
            found.append(point)
    return found


def _remove_home(home: Path) -> None:
    """A private containerd's directory, once nothing is mounted under it any more."""
    for point in reversed(_mounted_under(home)):
        subprocess.run(["umount", "-l", point], check=False)
    if not _mounted_under(home):
        shutil.rmtree(home, ignore_errors=True)


def _remove_cgroups(pod_uid: str = POD_UID) -> None:
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if parts[2] not in ("cgroup", "cgroup2"):
            continue
        for rel in (f"kubepods/besteffort/pod{pod_uid}", "kubepods/besteffort", "kubepods"):
            try:
                os.rmdir(Path(parts[1]) / rel)
            except OSError:
                pass  # not there, or another test's cgroups are still in it


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    if os.geteuid() != 0:
        pytest.skip("a private containerd needs root")
    missing = [b for b in ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox") if not shutil.which(b)]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run `bash scripts/setup.sh` (containerd runc busybox-static)")
    had_run_containerd = os.path.exists("/run/containerd")  # containerd 1.6 puts shim sockets in /run/containerd/s
    home = Path(tempfile.mkdtemp(prefix="pg-ctrd-", dir="/tmp"))  # short: the socket path has a 108-byte limit
    (home / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "", home / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "cat", "sleep"):
        (home / "rootfs" / "bin" / applet).symlink_to("busybox")
    (home / "config.toml").write_text(containerd_config(home))
    with open(home / "log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(home / "config.toml")], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    ctrd = Containerd(home, proc)
    try:
        deadline = time.monotonic() + 15
        while ctrd.ctr("version", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"private containerd did not start: {(home / 'log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield ctrd
    finally:
        ctrd.stop()
        _remove_cgroups()
        if not had_run_containerd:
            for d in ("/run/containerd/s", f"/run/containerd/runc/{ctrd.namespace}", "/run/containerd/runc",
                      "/run/containerd"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        _remove_home(home)


@pytest.fixture(scope="module")
def capture() -> Iterator[Any]:
    from tests.sensor.helpers import started_capture

    yield from started_capture({"execve", "openat"})


def container_events(cap: Any, full_id: str, until_argv0: str, timeout_s: float = 10) -> list[Event]:
    """The container's meta event and its processes' events, up to an exec with this argv[0] in it (busybox's
    sh runs its applets as /proc/self/exe, so argv is what names them)."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ev in cap.poll(100):
            mine = (ev["type"] == "container" and ev["args"].get("full_id") == full_id) or \
                (ev.get("proc") or {}).get("container_id") == full_id[:12]
            if mine:
                events.append(ev)
                if ev["type"] == "execve" and ev["proc"]["exe"] == until_argv0:
                    return events
    raise AssertionError(f"no exec of {until_argv0} in {full_id[:12]}: saw {[(e['type'], e['args']) for e in events]}")


ANNOTATIONS = {
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.container-name": "web",
    "io.kubernetes.cri.image-name": "registry.example:5000/shop/web:1.2",
    "io.kubernetes.cri.sandbox-namespace": "shop",
    "io.kubernetes.cri.sandbox-name": "web-7d9f8c-x2v4q",
    "io.kubernetes.cri.sandbox-id": "a" * 64,
    "io.kubernetes.cri.sandbox-uid": POD_UID,
}


@pytest.mark.ebpf
def test_containerd_container_has_its_cri_metadata_from_the_sensor_to_the_alert(
        containerd: Containerd, capture: Any, tmp_path: Path) -> None:
    from processor.pipeline import process_batch
    from processor.rules_source import build_engine
    from processor.state import HostState
    from schemas.codec import decode_batch, encode_batch
    from settings.config import Config
    from tests.pipeline.helpers import batch

    data = tmp_path / "data"
    data.mkdir()
    (data / "token").write_text("s3cret\n")
    capture.decoder.containers = ContainerMetadata(StateRoots.from_mapping(
        {"containerd": str(containerd.task_root), "containers_run": "", "containers_storage": "", "docker": ""}))
    while capture.poll(0):
        pass
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    before = time.time_ns()
    init_pid = containerd.run(cid, ["/bin/sh", "-c", "cat /data/token >/dev/null; exec sleep 60"], ANNOTATIONS,
                              [(data, "/data")])
    events = container_events(capture, cid, "sleep")

    metas = [e for e in events if e["type"] == "container"]
    assert len(metas) == 1, "one meta event per container"
    args = metas[0]["args"]
    assert {k: v for k, v in args.items() if k not in ("start_ts", "mounts")} == {
        "id": cid[:12], "full_id": cid, "type": "containerd", "name": "web",
        "image": "registry.example:5000/shop/web:1.2", "image_repository": "registry.example:5000/shop/web",
        "image_tag": "1.2", "k8s_ns": "shop", "k8s_pod": "web-7d9f8c-x2v4q", "privileged": "false",
        "k8s_pod_uid": POD_UID, "k8s_sandbox_id": "a" * 64,  # ctr's spec has namespaces of its own: not the host's
        "host_pid": "false", "host_network": "false", "host_ipc": "false"}
    assert args["mounts"] == f"{data}:/data", "bind mounts only: not proc, sysfs, tmpfs"
    assert before - 1_000_000_000 <= int(args["start_ts"]) <= time.time_ns()
    # the start of the container's init process (same clock ticks; the boot-to-epoch offset moves by microseconds)
    assert abs(int(args["start_ts"]) - process_start_ns(init_pid)) < 1_000_000
    assert events.index(metas[0]) < min(i for i, e in enumerate(events) if e["type"] == "execve"), \
        "the meta event precedes the container's first event"

    engine, report = build_engine(Config(), {"t.yaml": f"""
- rule: Token read in a container
  desc: test
  condition: evt.type = execve and container.id != host and proc.args = /data/token
  output: token read (container.name=%container.name image=%container.image.repository
    tag=%container.image.tag ns=%k8s.ns.name pod=%k8s.pod.name uid=%k8s.pod.uid sandbox=%k8s.pod.sandbox_id
    hostnet=%container.host_network privileged=%container.privileged
    mount=%container.mount.dest[{data}] args=%proc.args)
  priority: WARNING
"""})
    assert engine is not None, report
    state = HostState(procs={}, users={}, containers={})
    wire = decode_batch(encode_batch(batch("node-a", 1, events)))  # through the Avro schema, as the worker reads it
    result = process_batch(wire, state, engine)
    assert not result.failures, result.failures
    [alert] = result.alerts
    assert alert["output_fields"]["container.name"] == "web"
    assert ("container.name=web image=registry.example:5000/shop/web tag=1.2 ns=shop pod=web-7d9f8c-x2v4q "
            f"uid={POD_UID} sandbox={'a' * 12} hostnet=false privileged=false mount=/data args=/data/token"
            ) in alert["output"]


@pytest.mark.ebpf
def test_privileged_containerd_container_and_the_start_up_snapshot(containerd: Containerd) -> None:
    """`ctr run --privileged` (containerd's oci.WithPrivileged, as the CRI plugin's) reads as privileged, and a
    container already running when the sensor starts gets its metadata from the snapshot, under the state roots
    the sensor is configured with (sensor.container_state_roots)."""
    from sensor.agent import LiveSource

    roots = {"containerd": str(containerd.task_root), "containers_run": "", "containers_storage": "", "docker": ""}
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    init_pid = containerd.run(cid, ["/bin/sleep", "60"], {**ANNOTATIONS, "io.kubernetes.cri.container-name": "agent"},
                              [], privileged=True)
    source = LiveSource({"execve"}, container_state_roots=roots)
    source.start()
    try:
        events = source.poll(0)  # the start-up snapshot comes first
    finally:
        source.close()
    [meta] = [e for e in events if e["type"] == "container" and e["args"].get("full_id") == cid]
    assert meta["args"]["name"] == "agent" and meta["args"]["privileged"] == "true"
    assert abs(int(meta["args"]["start_ts"]) - process_start_ns(init_pid)) < 1_000_000
    [snap] = [e for e in events if e["type"] == "snapshot" and e["pid"] == init_pid]
    assert snap["proc"]["container_id"] == cid[:12]
    assert events.index(meta) < events.index(snap)
