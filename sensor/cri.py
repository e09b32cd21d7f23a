"""Pod and container labels, and the pod's IP, from the container runtime's CRI socket.

The runtime's files (sensor/container_runtime.py) name a container, its image, pod and namespace, but labels live
only in the runtime's database: kubelet, crictl and Falco's container plugin ask for them over CRI
(`ContainerStatus`, `PodSandboxStatus`), and so does the sensor, once per new container and once per pod. The
messages are Kubernetes' own (sensor/cri_api); a missing socket, an unknown container or a slow runtime leaves
the fields empty, never the capture waiting: ContainerMetadata asks on a thread of its own and waits a few
milliseconds at most (a late answer goes out as a second meta event). Each call has a deadline, and a socket that
let one pass (a hung or overloaded runtime) is left alone for a while, so a burst of new containers costs that
thread one deadline, not one per container.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson

from sensor.cri_api import api_pb2

log = logging.getLogger("peregrine.sensor.cri")

CONTAINER_STATUS = "/runtime.v1.RuntimeService/ContainerStatus"
POD_SANDBOX_STATUS = "/runtime.v1.RuntimeService/PodSandboxStatus"
# Answers that say the runtime is not answering (as opposed to "no such container").
UNRESPONSIVE = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE})


@dataclass
class CriInfo:
    labels: dict[str, str] = field(default_factory=dict)  # the container's
    name: str = ""
    image: str = ""
    sandbox_id: str = ""
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_ip: str = ""
    pod_uid: str = ""
    pod_name: str = ""
    pod_namespace: str = ""


class CriClient:
    """ContainerStatus/PodSandboxStatus against each configured socket that exists, first answer wins."""

    def __init__(self, sockets: list[str], timeout_s: float = 1.0, max_pods: int = 1024,
                 backoff_s: float = 30.0) -> None:
        self.sockets = [s for s in sockets if s]
        self.timeout_s = timeout_s
        self.max_pods = max_pods
        self.backoff_s = backoff_s
        self.calls = 0
        self.failures = 0  # calls that failed other than "not found": counted, logged once per socket
        self.skipped = 0  # lookups that did not ask a socket because it was backing off
        self.degraded = False  # the last lookup skipped or lost a socket: its answer may be incomplete
        self._resting: dict[str, float] = {}  # socket -> monotonic time until which it is not asked
        self._channels: dict[str, grpc.Channel] = {}
        self._pods: OrderedDict[str, api_pb2.PodSandboxStatus] = OrderedDict()
        self._warned: set[str] = set()

    def lookup(self, full_id: str, sandbox_id: str = "") -> CriInfo | None:
        """The container's CRI view, with its pod's; None when no runtime knows it (or none answered: then
        `degraded` is set, so the caller can ask again later)."""
        self.degraded = False
        for path in self.sockets:
            if not os.path.exists(path):
                continue
            if time.monotonic() < self._resting.get(path, 0.0):
                self.skipped += 1
                self.degraded = True
                continue
            reply = self._call(path, CONTAINER_STATUS, api_pb2.ContainerStatusRequest(container_id=full_id, verbose=True),
                               api_pb2.ContainerStatusResponse)
            if reply is None or not reply.status.id:
                continue
            status = reply.status
            info = CriInfo(labels=dict(status.labels), name=status.metadata.name, image=status.image.image,
                           sandbox_id=sandbox_id or _sandbox_of(reply.info))
            pod = self._pod(path, info.sandbox_id) if info.sandbox_id else None
            if pod is not None:
                info.pod_labels = dict(pod.labels)
                info.pod_ip = pod.network.ip
                info.pod_uid, info.pod_name, info.pod_namespace = (pod.metadata.uid, pod.metadata.name,
                                                                   pod.metadata.namespace)
            return info
        return None

    def _pod(self, path: str, sandbox_id: str) -> Any:
        pod = self._pods.get(sandbox_id)
        if pod is None:
            reply = self._call(path, POD_SANDBOX_STATUS, api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id),
                               api_pb2.PodSandboxStatusResponse)
            if reply is None or not reply.status.id:
                return None
            pod = self._pods[sandbox_id] = reply.status
            while len(self._pods) > self.max_pods:
                self._pods.popitem(last=False)
        return pod

    def _call(self, path: str, method: str, request: Any, reply_type: Any) -> Any:
        channel = self._channels.get(path)
        if channel is None:
            channel = self._channels[path] = grpc.insecure_channel(f"unix://{path}")
        call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=reply_type.FromString)
        self.calls += 1
        try:
            return call(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code != grpc.StatusCode.NOT_FOUND:
                self.failures += 1
                self.degraded = True
                if code in UNRESPONSIVE:
                    self._resting[path] = time.monotonic() + self.backoff_s
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("CRI %s %s: %s%s", path, method.rsplit("/", 1)[1], code,
                                f"; not asked again for {self.backoff_s:g} s" if code in UNRESPONSIVE else "")
            return None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def _sandbox_of(info: Any) -> str:
    """The pod sandbox id from a verbose ContainerStatus's info["info"] (containerd's and CRI-O's "sandboxID")."""
    try:
        verbose = orjson.loads(info.get("info") or "{}")
    except orjson.JSONDecodeError:
        return ""
    return str(verbose.get("sandboxID") or "") if isinstance(verbose, dict) else ""
