"""CI validation of what deploy/ ships: Kubernetes OpenAPI + KEDA CRD schemas, topics equal to the topology."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from outputs.config import parse_outputs
from schemas.topology import EVENTHUBS_STANDARD, check_fits, render_admin, render_bicep, topology
from settings.config import Config, load_config
from settings.kafka_clients import resolve
from tests.deploy.manifests import (
    K8S,
    K8S_VERSION,
    REPO,
    SCHEMAS,
    admin_calls,
    aks_overlay_copy,
    bicep_event_hubs,
    by_kind,
    kustomize,
)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(K8S / "base")


@pytest.fixture(scope="module")
def aks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return kustomize(aks_overlay_copy(tmp_path_factory.mktemp("aks")))


def _validate(doc: dict[str, Any]) -> None:
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    if doc["apiVersion"].startswith("keda.sh/"):
        schema = json.loads((SCHEMAS / f"keda-{doc['kind'].lower()}.json").read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    else:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where}: {exc.path}: {exc.message}") from None


def test_every_manifest_is_valid_kubernetes(base: list[dict[str, Any]], aks: list[dict[str, Any]]) -> None:
    for doc in base + aks:
        _validate(doc)
    assert {d["kind"] for d in aks} >= {"DaemonSet", "Deployment", "PodDisruptionBudget", "Service", "ConfigMap",
                                        "Secret", "NetworkPolicy", "ScaledObject", "TriggerAuthentication"}


def test_the_validators_do_reject_mistakes(aks: list[dict[str, Any]]) -> None:
    """Strict schemas, not just parsing: a misspelt field fails in both validators."""
    ds = json.loads(json.dumps(by_kind(aks, "DaemonSet")["peregrine-sensor"]))
    ds["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(AssertionError, match="hostPid"):
        _validate(ds)
    so = json.loads(json.dumps(by_kind(aks, "ScaledObject")["peregrine-processor"]))
    so["spec"]["minReplicas"] = 1
    with pytest.raises(AssertionError, match="minReplicas"):
        _validate(so)


def test_privileged_sensor_component_renders_valid(tmp_path: Path) -> None:
    overlay = tmp_path / "k8s" / "overlays" / "old-kernels"
    overlay.parent.parent.mkdir(parents=True)
    import shutil

    shutil.copytree(K8S / "base", tmp_path / "k8s" / "base")
    shutil.copytree(K8S / "components", tmp_path / "k8s" / "components")
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "resources: [../../base]\ncomponents: [../../components/privileged-sensor]\n")
    docs = kustomize(overlay)
    for doc in docs:
        _validate(doc)
    assert by_kind(docs, "DaemonSet")["peregrine-sensor"]["spec"]["template"]["spec"]["containers"][0][
        "securityContext"]["privileged"] is True


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def test_sensor_daemonset_sees_the_host_with_least_privilege(aks: list[dict[str, Any]]) -> None:
    pod = _pod(by_kind(aks, "DaemonSet")["peregrine-sensor"])
    assert pod["hostPID"] is True
    assert {"operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    container = pod["containers"][0]
    assert container["args"][0] == "sensor"
    sc = container["securityContext"]
    assert sc["privileged"] is False
    assert {"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE"} <= set(sc["capabilities"]["add"])
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert {"/sys/kernel/tracing", "/sys/kernel/btf", "/proc", "/sys/fs/cgroup"} <= host_paths
    assert not host_paths & {"/lib/modules", "/usr/src"}, "the image carries its own kernel headers"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert str(Config().sensor.metrics_port) == pod_annotation(by_kind(aks, "DaemonSet")["peregrine-sensor"])


def pod_annotation(doc: dict[str, Any]) -> str:
    return str(doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])


def test_every_workload_has_probes_metrics_and_its_command(aks: list[dict[str, Any]]) -> None:
    expected = {"peregrine-processor": ["worker"], "peregrine-outputs": ["outputs", "--config"], "peregrine-ui": ["ui"]}
    deployments = by_kind(aks, "Deployment")
    for name, command in expected.items():
        container = _pod(deployments[name])["containers"][0]
        assert container["args"][: len(command)] == command
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz", f"{name} {probe}"
        assert deployments[name]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod_annotation(deployments["peregrine-processor"]) == str(Config().worker.metrics_port)
    pdb = by_kind(aks, "PodDisruptionBudget")["peregrine-processor"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployments["peregrine-processor"]["spec"]["selector"]["matchLabels"]
    assert "replicas" not in deployments["peregrine-processor"]["spec"], "KEDA owns the replica count on AKS"


def test_keda_scales_processors_on_the_events_lag_with_eventhubs_auth(aks: list[dict[str, Any]]) -> None:
    cfg = load_config(_overlay_config(aks))
    so = by_kind(aks, "ScaledObject")["peregrine-processor"]["spec"]
    assert so["minReplicaCount"] >= 1
    assert so["maxReplicaCount"] <= cfg.kafka.events_partitions
    trigger = so["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == cfg.kafka.topics.events
    assert trigger["metadata"]["consumerGroup"] == cfg.worker.app_id
    assert trigger["metadata"]["bootstrapServers"] == cfg.kafka.bootstrap_servers
    auth = by_kind(aks, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
    params = {ref["parameter"]: ref for ref in auth}
    assert set(params) == {"sasl", "username", "password", "tls"}
    secret = by_kind(aks, "Secret")[params["password"]["name"]]
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert (data["sasl"], data["tls"], data["username"]) == ("plaintext", "enable", "$ConnectionString")
    assert data["password"].startswith("Endpoint=sb://")


def _overlay_config(docs: list[dict[str, Any]]) -> str:
    import tempfile

    text = by_kind(docs, "ConfigMap")["peregrine-config"]["data"]["peregrine.yaml"]
    path = Path(tempfile.mkdtemp()) / "peregrine.yaml"
    path.write_text(text)
    return str(path)


def test_configs_shipped_load(aks: list[dict[str, Any]], base: list[dict[str, Any]]) -> None:
    cfg = load_config(_overlay_config(aks), environ={})
    assert cfg.kafka.profile == "eventhubs" and cfg.kafka.sasl_password.startswith("file:")
    assert load_config(_overlay_config(base), environ={}).kafka.profile == "local"
    compose_cfg = load_config(REPO / "deploy" / "compose" / "peregrine.yaml", environ={})
    assert resolve(compose_cfg.kafka).security_protocol == "PLAINTEXT"
    for path in (K8S / "base" / "config" / "outputs.yaml", REPO / "deploy" / "compose" / "outputs.yaml"):
        spec = parse_outputs(yaml.safe_load(path.read_text()), str(path))
        assert all(o.dlq_topic(cfg.kafka.topics.alerts) in {t.name for t in topology(cfg)} for o in spec.outputs)


def test_topology_fits_event_hubs_standard() -> None:
    topics = topology(Config())
    assert check_fits(topics, EVENTHUBS_STANDARD) == []
    bigger = Config()
    bigger.kafka.events_partitions = 64
    assert any("64 partitions" in p for p in check_fits(topology(bigger)))


def test_bicep_event_hubs_are_the_topology() -> None:
    committed = (REPO / "deploy" / "azure" / "eventhubs.bicep").read_text()
    topics = topology(Config())
    assert committed == render_bicep(topics), "regenerate: peregrine topology --format bicep > deploy/azure/eventhubs.bicep"
    hubs = bicep_event_hubs(committed)
    assert hubs == [(t.name, t.partitions, "Compact" if t.compacted else "Delete") for t in topics]
    audit = (REPO / "deploy" / "azure" / "aks-audit.bicep").read_text()
    assert "eventHubName: 'peregrine.kube-audit'" in audit and "peregrine.kube-audit" in {t.name for t in topics}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def test_compose_topics_are_the_topology() -> None:
    script = compose()["services"]["topics"]["command"][0]
    topics = topology(load_config(REPO / "deploy" / "compose" / "peregrine.yaml", environ={}))
    assert admin_calls(script) == [(t.name, t.partitions, t.kafka_config()) for t in topics]
    assert admin_calls(script) == admin_calls(render_admin(topics, "kafka:9092"))


def test_compose_structure() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "topics", "sensor", "processor", "outputs", "ui"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    processor = services["processor"]
    assert "container_name" not in processor and "ports" not in processor, "--scale processor=N must work"
    assert processor["command"][0] == "worker"
    assert processor["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    sensor = services["sensor"]
    assert sensor["privileged"] is True and sensor["pid"] == "host"
    mounts = {v.split(":")[0] for v in sensor["volumes"]}
    assert {"/sys/kernel/tracing", "/sys/kernel/btf", "/proc", "/sys/fs/cgroup"} <= mounts
    assert services["outputs"]["command"][:2] == ["outputs", "--config"]
    assert services["ui"]["command"] == ["ui"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} is missing"


def test_dockerfiles_carry_what_the_pods_expect() -> None:
    sensor = (REPO / "deploy" / "docker" / "Dockerfile.sensor").read_text()
    assert "linux-headers-amd64" in sensor and "python3-bpfcc" in sensor
    main = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    assert "USER 10001" in main and "/usr/share/peregrine/rules" in main
