"""Loading what deploy/ ships: kustomize renderings (kubectl's built-in kustomize), compose, Bicep."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
SCHEMAS = K8S / "schemas"
K8S_VERSION = "1.32.0"  # an AKS-supported minor; kubernetes-validate ships its OpenAPI schemas
ROLES = ("sensor", "processor", "outputs", "ui")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/kubernetes"
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
    assert proc.returncode == 0, f"kubectl kustomize {directory}: {proc.stderr.strip()}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def aks_overlay_copy(tmp: Path) -> Path:
    """The aks overlay with dummy role connection strings (the real ones are never in git)."""
    copy = tmp / "kubernetes"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("*.connection-string"))
    for role in ROLES:
        (copy / "overlays" / "aks" / "secrets" / f"{role}.connection-string").write_text(
            f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=peregrine-{role};SharedAccessKey=dummy=")
    return copy / "overlays" / "aks"


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by name; generated ConfigMaps/Secrets also under their name without the hash suffix."""
    found = {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
    if kind in ("ConfigMap", "Secret"):
        found.update({re.sub(r"-[a-z0-9]{10}$", "", name): d for name, d in list(found.items())})
    return found


def bicep_event_hubs(text: str) -> list[tuple[str, int, str]]:
    """(name, partitions, cleanupPolicy) of every entry of the `eventHubs` array."""
    pattern = r"\{ name: '([^']+)', partitions: (\d+), cleanupPolicy: '(\w+)'"
    return [(m[1], int(m[2]), m[3]) for m in re.finditer(pattern, text)]


def admin_calls(script: str) -> list[tuple[str, int, dict[str, str]]]:
    """(topic, partitions, configs) of every kafka-topics.sh --create line."""
    calls = []
    for line in script.splitlines():
        if "kafka-topics.sh" not in line or "--create" not in line:
            continue
        words = line.split()
        configs = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--config")
        calls.append((words[words.index("--topic") + 1], int(words[words.index("--partitions") + 1]), configs))
    return calls
