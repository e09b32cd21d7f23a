"""Falco's container.* metadata from the container runtime's own state files: no socket, no gRPC, no network.

Falco asks the runtime's API (docker socket, CRI gRPC) for a container's name, image and pod. A node agent can
read the same facts from what the runtime keeps on disk, which needs no credentials and cannot hang on a busy
daemon. Looked up once per new container id (when its meta event is first sent), never per event; a missing or
unreadable file leaves the meta event with id/type only, and nothing here raises into the capture loop.

Layouts read (each runtime's documented on-disk state):
  containerd  <containerd>/<namespace>/<id>/config.json   OCI bundle of the v2 runtime shim (CRI: namespace k8s.io,
              + init.pid                                   docker's containerd: moby); annotations io.kubernetes.cri.*
  cri-o       <containers_run|containers_storage>/<id>/userdata/config.json   OCI spec; annotations io.kubernetes.*
  podman      the same, plus containers/storage's containers.json (and volatile-containers.json): names, metadata
  docker      <docker>/<id>/config.v2.json + hostconfig.json
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from sensor.containers import ContainerRef

if TYPE_CHECKING:  # grpc is imported only by a sensor that asks a runtime over CRI
    from sensor.cri import CriClient, CriInfo

log = logging.getLogger(__name__)

CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_STATE_FILE = 1 << 20  # a bundle's config.json is a few KB; a larger file is not what we expect
MAX_STORAGE_INDEX = 16 << 20  # containers.json lists every container of the host

# Annotation keys, most specific first: containerd's CRI plugin, then the kubelet labels CRI-O copies into the
# spec, then CRI-O's own.
NAME_KEYS = ("io.kubernetes.cri.container-name", "io.kubernetes.container.name")
IMAGE_KEYS = ("io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName")
NAMESPACE_KEYS = ("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace",
                  "io.kubernetes.cri-o.Namespace")
POD_KEYS = ("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name")
SANDBOX_TYPE_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")
CREATED_KEYS = ("io.kubernetes.cri-o.Created",)
POD_UID_KEYS = ("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid")
SANDBOX_ID_KEYS = ("io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID", "io.kubernetes.sandbox.id")
CRIO_LABELS_KEY = "io.kubernetes.cri-o.Labels"  # the container's labels, as JSON
MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE = 64, 253, 1024  # labels are the workload owner's text: bounded

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class StateRoots:
    """Where each runtime keeps its state (sensor.container_state_roots); '' turns a source off."""

    containerd: str = "/run/containerd/io.containerd.runtime.v2.task"
    containers_run: str = "/run/containers/storage/overlay-containers"
    containers_storage: str = "/var/lib/containers/storage/overlay-containers"
    docker: str = "/var/lib/docker/containers"

    @classmethod
    def from_mapping(cls, roots: Mapping[str, Any]) -> StateRoots:
        """The defaults with the configured keys replaced (a partial mapping keeps the other defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(roots) - known)
        if unknown:
            raise ValueError(f"sensor.container_state_roots: unknown key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return replace(cls(), **{k: str(v or "") for k, v in roots.items()})


@dataclass
class ContainerInfo:
    """What a runtime's state says about one container (empty fields: not known)."""

    type: str = ""
    name: str = ""
    image: str = ""
    privileged: bool | None = None
    start_ts: int = 0
    mounts: list[tuple[str, str]] = field(default_factory=list)
    k8s_ns: str = ""
    k8s_pod: str = ""
    k8s_pod_uid: str = ""
    sandbox_id: str = ""
    host_pid: bool | None = None  # shares the host's pid / network / ipc namespace
    host_network: bool | None = None
    host_ipc: bool | None = None
    labels: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)  # from CRI (sensor/cri.py): no runtime file has them
    pod_ip: str = ""

    def as_args(self) -> dict[str, str]:
        """The container meta event's args (map<string,string>), as the processor's container.* fields read them."""
        out: dict[str, str] = {}
        if self.name:
            out["name"] = self.name
        if self.image:
            repository, tag, digest = split_image(self.image)
            out["image"] = self.image
            out["image_repository"] = repository
            if tag:
                out["image_tag"] = tag
            if digest:
                out["image_digest"] = digest
        if self.privileged is not None:
            out["privileged"] = "true" if self.privileged else "false"
        if self.start_ts:
            out["start_ts"] = str(self.start_ts)
        mounts = [f"{src}:{dst}" for src, dst in self.mounts if "," not in src + dst]  # ',' separates entries
        if mounts:
            out["mounts"] = ",".join(mounts)
        if self.k8s_ns:
            out["k8s_ns"] = self.k8s_ns
        if self.k8s_pod:
            out["k8s_pod"] = self.k8s_pod
        if self.k8s_pod_uid:
            out["k8s_pod_uid"] = self.k8s_pod_uid
        if self.sandbox_id:
            out["k8s_sandbox_id"] = self.sandbox_id
        for key, shared in (("host_pid", self.host_pid), ("host_network", self.host_network),
                            ("host_ipc", self.host_ipc)):
            if shared is not None:
                out[key] = "true" if shared else "false"
        if self.labels:
            out["labels"] = orjson.dumps(self.labels, option=orjson.OPT_SORT_KEYS).decode()
        if self.pod_labels:
            out["pod_labels"] = orjson.dumps(self.pod_labels, option=orjson.OPT_SORT_KEYS).decode()
        if self.pod_ip:
            out["pod_ip"] = self.pod_ip
        return out

    def add_cri(self, cri: CriInfo) -> None:
        """What the runtime answers over CRI, on top of what its files said."""
        self.labels = bounded_labels({**cri.labels, **self.labels})
        self.pod_labels = bounded_labels(cri.pod_labels)
        self.pod_ip = self.pod_ip or cri.pod_ip
        self.name = self.name or cri.name
        self.image = self.image or cri.image
        self.k8s_pod = self.k8s_pod or cri.pod_name
        self.k8s_ns = self.k8s_ns or cri.pod_namespace
        self.k8s_pod_uid = self.k8s_pod_uid or cri.pod_uid
        self.sandbox_id = self.sandbox_id or cri.sandbox_id


def split_image(image: str) -> tuple[str, str, str]:
    """(repository, tag, digest) as Falco's split_container_image: the repository keeps the registry[:port]."""
    hostport, slash, rest = image.partition("/")
    prefix = hostport + "/" if slash else ""
    if not slash:
        rest = image
    named, _, digest = rest.partition("@")
    name, _, tag = named.partition(":")
    return prefix + name, tag, digest


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fractional digits (Go's RFC3339Nano); 0 if not."""
    m = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return 0
    try:
        seconds = int(datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3])).timestamp())
    except ValueError:
        return 0
    return seconds * 1_000_000_000 + int((m[2] or "").ljust(9, "0")) if seconds > 0 else 0


def _read_json(path: str, limit: int = MAX_STATE_FILE) -> Any:
    """The parsed file, or None when it is missing, unreadable, too large or not JSON."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        log.warning("%s: larger than %d bytes, not read", path, limit)
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        log.warning("%s:%d: not JSON: %s", path, exc.lineno, exc.msg)
        return None


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def process_start_ns(pid: int) -> int:
    """The start time of a host pid (epoch ns), from /proc/<pid>/stat; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0
    boot_epoch_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return boot_epoch_ns + ticks * 1_000_000_000 // CLK_TCK


def bounded_labels(labels: Any) -> dict[str, str]:
    """String labels only, at most MAX_LABELS of bounded size (a container's labels are anyone's text)."""
    out: dict[str, str] = {}
    for key, value in _dict(labels).items():
        if isinstance(key, str) and isinstance(value, str) and len(out) < MAX_LABELS:
            out[key[:MAX_LABEL_KEY]] = value[:MAX_LABEL_VALUE]
    return out


_NS_FILES = {"pid": "pid", "network": "net", "ipc": "ipc"}


def _is_host_namespace(entries: dict[Any, dict[str, Any]], kind: str) -> bool | None:
    """A namespace the spec does not list is the host's; one it joins by path (a pod's containers join their
    sandbox's) is the host's when it is the same namespace as pid 1's (the sensor runs in the host's pid
    namespace); one the spec creates is not."""
    entry = entries.get(kind)
    if entry is None:
        return True
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        return False
    try:
        return os.stat(path).st_ino == _host_namespace(_NS_FILES[kind])
    except OSError:
        return None  # the process holding it is gone: not known


def _host_namespace(name: str) -> int:
    """The host's namespace of this kind: pid 1's (the DaemonSet runs in the host's pid namespace); where pid 1's
    cannot be read (some VMs' init refuses it), the sensor's own, which is the host's when run on the host."""
    for proc in ("1", "self"):
        try:
            return os.stat(f"/proc/{proc}/ns/{name}").st_ino
        except OSError:
            continue
    return -1


def from_oci_spec(spec: Any) -> ContainerInfo:
    """Name, image, pod and namespace from the annotations; privileged from capabilities and masked paths;
    bind mounts (as Falco lists a container's volumes, not the runtime's own proc/sysfs/tmpfs mounts)."""
    spec = _dict(spec)
    ann = {k: v for k, v in _dict(spec.get("annotations")).items() if isinstance(v, str)}
    info = ContainerInfo(name=_first(ann, NAME_KEYS), image=_first(ann, IMAGE_KEYS),
                         k8s_ns=_first(ann, NAMESPACE_KEYS), k8s_pod=_first(ann, POD_KEYS),
                         start_ts=rfc3339_ns(_first(ann, CREATED_KEYS)))
    if CRIO_LABELS_KEY in ann:
        try:
            info.labels = bounded_labels(orjson.loads(ann[CRIO_LABELS_KEY]))
        except orjson.JSONDecodeError:
            pass
    info.k8s_pod_uid = _first(ann, POD_UID_KEYS) or info.labels.get("io.kubernetes.pod.uid", "")
    info.sandbox_id = _first(ann, SANDBOX_ID_KEYS)
    namespaces = _dict(spec.get("linux")).get("namespaces")
    if isinstance(namespaces, list):
        entries = {n.get("type"): n for n in map(_dict, namespaces)}
        info.host_pid, info.host_network, info.host_ipc = (_is_host_namespace(entries, kind)
                                                           for kind in ("pid", "network", "ipc"))
    if not info.name and _first(ann, SANDBOX_TYPE_KEYS) == "sandbox" and info.k8s_pod:
        info.name = "POD"  # the pod's pause container, named as kubelet names it (CRI-O labels it so too)
    caps = _dict(_dict(spec.get("process")).get("capabilities")).get("bounding")
    if isinstance(caps, list):
        # Privileged, as every runtime's privileged mode makes a spec (containerd's oci.WithPrivileged, CRI,
        # podman, docker): CAP_SYS_ADMIN kept and no /proc paths masked; a default container has neither. Not
        # "all capabilities": a privileged container gets the runtime's own bounding set, which a restricted
        # host (or an older runtime on a newer kernel) makes smaller than the kernel's full set.
        info.privileged = "CAP_SYS_ADMIN" in caps and not _dict(spec.get("linux")).get("maskedPaths")
    mounts = spec.get("mounts")
    for m in mounts if isinstance(mounts, list) else []:
        m = _dict(m)
        options = m.get("options") or []
        is_bind = m.get("type") == "bind" or "bind" in options or "rbind" in options
        src, dst = m.get("source"), m.get("destination")
        if is_bind and isinstance(src, str) and isinstance(dst, str):
            info.mounts.append((src, dst))
    return info


@dataclass
class _StorageIndex:
    """containers/storage's containers.json, parsed once per change of the file."""

    path: str
    mtime_ns: int = -1
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, full_id: str) -> dict[str, Any]:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return {}
        if mtime != self.mtime_ns:
            entries = _read_json(self.path, MAX_STORAGE_INDEX)
            self.by_id = {e["id"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)} \
                if isinstance(entries, list) else {}
            self.mtime_ns = mtime
        return self.by_id.get(full_id, {})


class RuntimeState:
    """Reads one container's metadata from whichever runtime's state holds it."""

    def __init__(self, roots: StateRoots | None = None) -> None:
        self.roots = roots or StateRoots()
        self._indexes = {p: _StorageIndex(p) for root in (self.roots.containers_storage, self.roots.containers_run)
                         if root for p in (os.path.join(root, "containers.json"),
                                           os.path.join(root, "volatile-containers.json"))}

    def read(self, ref: ContainerRef) -> ContainerInfo | None:
        """The container's metadata; the cgroup's runtime is asked first, then the others (a bare cgroup id
        names no runtime for sure). None when no runtime's state has it."""
        readers: dict[str, Callable[[str], ContainerInfo | None]] = {
            "docker": self.docker, "containerd": self.containerd, "cri-o": self.containers, "podman": self.containers}
        order = [readers.get(ref.type, self.containerd)] + [self.docker, self.containerd, self.containers]
        tried: set[Callable[[str], ContainerInfo | None]] = set()
        for reader in order:
            if reader in tried:
                continue
            tried.add(reader)
            info = reader(ref.full_id)
            if info is not None:
                return info
        return None

    def containerd(self, full_id: str) -> ContainerInfo | None:
        root = self.roots.containerd
        if not root:
            return None
        try:
            namespaces = [e.name for e in os.scandir(root) if e.is_dir()]
        except OSError:
            return None
        for ns in sorted(namespaces, key=lambda n: n != "k8s.io"):
            bundle = os.path.join(root, ns, full_id)
            spec = _read_json(os.path.join(bundle, "config.json"))
            if spec is None:
                continue
            info = from_oci_spec(spec)
            info.type = "docker" if ns == "moby" else "containerd"
            if ns == "moby":  # docker's own state names the container; containerd's bundle does not
                info = self.docker(full_id) or info
            info.start_ts = info.start_ts or self._bundle_start_ns(bundle)
            return info
        return None

    @staticmethod
    def _bundle_start_ns(bundle: str) -> int:
        """The start of the container's init process (the shim's init.pid, host pid), else when the bundle's
        config.json was written (task creation): the moment the container's first process began."""
        try:
            with open(os.path.join(bundle, "init.pid")) as f:
                started = process_start_ns(int(f.read().strip() or "0"))
            if started:
                return started
        except (OSError, ValueError):
            pass
        try:
            return os.stat(os.path.join(bundle, "config.json")).st_mtime_ns
        except OSError:
            return 0

    def containers(self, full_id: str) -> ContainerInfo | None:
        """CRI-O and podman (containers/storage): the OCI spec in userdata, names from the storage index."""
        spec = None
        for root in (self.roots.containers_run, self.roots.containers_storage):
            if root:
                spec = _read_json(os.path.join(root, full_id, "userdata", "config.json"))
                if spec is not None:
                    break
        entry: dict[str, Any] = {}
        for index in self._indexes.values():
            entry = index.get(full_id)
            if entry:
                break
        if spec is None and not entry:
            return None
        info = from_oci_spec(spec)
        ann = _dict(_dict(spec).get("annotations"))
        if ann.get("io.container.manager") == "libpod":  # podman marks the specs it writes
            info.type = "podman"
        elif any(str(k).startswith("io.kubernetes.cri-o.") for k in ann):
            info.type = "cri-o"
        meta: dict[str, Any] = {}
        if isinstance(entry.get("metadata"), str):
            try:
                meta = _dict(orjson.loads(entry["metadata"]))
            except orjson.JSONDecodeError:
                meta = {}
        names = entry.get("names")
        info.name = info.name or str(meta.get("name") or (names[0] if isinstance(names, list) and names else ""))
        info.image = info.image or str(meta.get("image-name") or "")
        info.start_ts = info.start_ts or rfc3339_ns(str(entry.get("created") or ""))
        return info

    def docker(self, full_id: str) -> ContainerInfo | None:
        root = self.roots.docker
        if not root:
            return None
        cfg = _read_json(os.path.join(root, full_id, "config.v2.json"))
        if not isinstance(cfg, dict):
            return None
        host = _dict(_read_json(os.path.join(root, full_id, "hostconfig.json")))
        config = _dict(cfg.get("Config"))
        labels = {k: v for k, v in _dict(config.get("Labels")).items() if isinstance(v, str)}
        info = ContainerInfo(type="docker", image=str(config.get("Image") or ""),
                             name=labels.get("io.kubernetes.container.name") or str(cfg.get("Name") or "").lstrip("/"),
                             start_ts=rfc3339_ns(str(cfg.get("Created") or "")),
                             k8s_ns=labels.get("io.kubernetes.pod.namespace", ""),
                             k8s_pod=labels.get("io.kubernetes.pod.name", ""),
                             k8s_pod_uid=labels.get("io.kubernetes.pod.uid", ""),
                             sandbox_id=labels.get("io.kubernetes.sandbox.id", ""), labels=bounded_labels(labels))
        if isinstance(host.get("Privileged"), bool):
            info.privileged = host["Privileged"]
        if host:  # docker's modes: "host" shares the host's namespace
            info.host_pid, info.host_network, info.host_ipc = (host.get("PidMode") == "host",
                                                               host.get("NetworkMode") == "host",
                                                               host.get("IpcMode") == "host")
        for point in _dict(cfg.get("MountPoints")).values():
            point = _dict(point)
            src, dst = point.get("Source"), point.get("Destination")
            if isinstance(src, str) and src and isinstance(dst, str):
                info.mounts.append((src, dst))
        info.mounts.sort(key=lambda m: m[1])
        return info


@dataclass
class _Seen:
    complete: bool
    tries: int
    next_try: float


class ContainerMetadata:
    """The container meta events' args: once per container, with what the runtime's state says.

    A container whose state was not found (yet: a race with the runtime, or a runtime we do not read) is
    looked up again at its later execs, at most RETRIES times, a second apart. Remembered ids are bounded;
    a forgotten one is simply announced again.

    CRI (labels, pod IP) is asked on a thread of its own: the capture loop waits for the answer at most
    `cri_wait_s` (a healthy runtime answers in ~2 ms, so the first meta event usually has everything). A later
    answer is not lost: `late()` hands over the complete args, which the capture sends as a second meta event
    for the container, so a slow or hung runtime costs the capture milliseconds, not the CRI deadline.
    """

    RETRIES = 3
    RETRY_S = 1.0
    CRI_WAIT_S = 0.02

    def __init__(self, roots: StateRoots | None = None, max_containers: int = 4096, cri: CriClient | None = None,
                 cri_wait_s: float = CRI_WAIT_S) -> None:
        self.state = RuntimeState(roots)
        self.cri = cri
        self.cri_wait_s = cri_wait_s
        self.max_containers = max_containers
        self.lookups = 0
        self.failures = 0  # lookups that raised (a malformed state file): counted, never propagated
        self.cri_late = 0  # CRI answers that came after the capture stopped waiting (sent as a second meta event)
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._cri_pool = ThreadPoolExecutor(1, thread_name_prefix="peregrine-cri") if cri is not None else None
        self._asking: dict[str, _Asking] = {}  # full id -> the CRI question still out

    def announce(self, ref: ContainerRef) -> dict[str, str] | None:
        """The meta event's args when this container is new or now better known; None when already sent."""
        seen = self._seen.get(ref.full_id)
        now = time.monotonic()
        if seen is not None:
            self._seen.move_to_end(ref.full_id)
            if seen.complete or seen.tries >= self.RETRIES or now < seen.next_try:
                return None
        info, partial = self.lookup(ref)
        # The runtime's files answered but its CRI socket did not (backing off, timed out, still thinking):
        # labels may be missing, so send what is known; a late CRI answer comes through late(), and a failed one
        # is asked again at a later exec (at most RETRIES times).
        if seen is not None and info is None:
            seen.tries += 1
            seen.next_try = now + self.RETRY_S
            return None
        if seen is None:
            self._seen[ref.full_id] = seen = _Seen(False, 1, now + self.RETRY_S)
            while len(self._seen) > self.max_containers:
                self._seen.popitem(last=False)
        elif partial:
            seen.tries += 1
            seen.next_try = now + self.RETRY_S
        seen.complete = info is not None and not partial
        return _args(ref, info)

    def lookup(self, ref: ContainerRef) -> tuple[ContainerInfo | None, bool]:
        """(what is known, whether CRI's part may be missing)."""
        self.lookups += 1
        try:
            info = self.state.read(ref)
        except Exception:  # a state file of a shape we did not expect must not stop the capture
            self.failures += 1
            log.warning("container %s: reading the runtime's state failed", ref.full_id, exc_info=True)
            return None, False
        if self._cri_pool is None:
            return info, False
        asking = self._asking.pop(ref.full_id, None)
        if asking is None:
            asking = _Asking(ref, self._cri_pool.submit(self._ask_cri, ref.full_id, info.sandbox_id if info else ""))
        asking.files = info
        try:
            cri, degraded = asking.answer.result(timeout=self.cri_wait_s)
        except FutureTimeout:
            self._asking[ref.full_id] = asking
            return info, info is not None
        return _merge(ref, info, cri), degraded and info is not None

    def late(self) -> list[dict[str, str]]:
        """The complete args of containers whose CRI answer arrived after announce() stopped waiting."""
        if not self._asking:
            return []
        out = []
        for full_id, asking in list(self._asking.items()):
            if not asking.answer.done():
                continue
            del self._asking[full_id]
            cri, degraded = asking.answer.result()
            seen = self._seen.get(full_id)
            if cri is None:
                continue  # not found (nothing more to say), or failed: a later exec asks again
            self.cri_late += 1
            if seen is not None and not degraded:
                seen.complete = True
            out.append(_args(asking.ref, _merge(asking.ref, asking.files, cri)))
        return out

    def _ask_cri(self, full_id: str, sandbox_id: str) -> tuple[CriInfo | None, bool]:
        """On the CRI thread: the answer, and whether a socket was skipped or failed."""
        assert self.cri is not None
        try:
            cri = self.cri.lookup(full_id, sandbox_id)
        except Exception:
            log.warning("container %s: the CRI lookup failed", full_id, exc_info=True)
            return None, True
        return cri, self.cri.degraded

    def close(self) -> None:
        if self._cri_pool is not None:
            self._cri_pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Asking:
    ref: ContainerRef
    answer: Future[tuple[CriInfo | None, bool]]
    files: ContainerInfo | None = None  # what the runtime's files said, to merge the answer into


def _merge(ref: ContainerRef, files: ContainerInfo | None, cri: CriInfo | None) -> ContainerInfo | None:
    if cri is None:
        return files
    info = replace(files) if files is not None else ContainerInfo(type=ref.type)
    info.add_cri(cri)
    return info


def _args(ref: ContainerRef, info: ContainerInfo | None) -> dict[str, str]:
    args = {"id": ref.id, "type": ref.type, "full_id": ref.full_id}
    if info is not None:
        args.update(info.as_args())
        args["type"] = info.type or ref.type
    return args
