"""A local broker that behaves like Event Hubs' Kafka endpoint where it matters to our clients.

An extra SASL_SSL listener (self-signed CA, PLAIN, user `$ConnectionString`, a connection-string password),
no topic auto-creation, and requests above 1,046,528 bytes closing the connection, as Azure does.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.local_kafka import KafkaError, LocalKafka
from settings.config import Config, KafkaConfig
from settings.kafka_clients import EVENTHUBS_CONNECTION_LIMIT_BYTES, EVENTHUBS_USERNAME

LISTENER = "SASL_SSL"


@dataclass(frozen=True)
class TestCA:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, as PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_test_ca(directory: Path, days: int = 2) -> TestCA:
    """Generate the CA and server certificate with the openssl CLI (every Debian machine has it)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                   "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert,
         "-days", str(days), "-subj", "/CN=Peregrine test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", str(days), "-extfile", ext],
    ]
    for step in steps:
        proc = subprocess.run([str(a) for a in step], capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaError(f"openssl {step[1]} failed: {proc.stderr.strip()}")
    return TestCA(ca_cert, cert, key)


def connection_string(namespace: str = "peregrine-test", rule: str = "peregrine-processor") -> str:
    """A password shaped like an Event Hubs namespace connection string (random key)."""
    key = base64.b64encode(os.urandom(32)).decode()
    return f"Endpoint=sb://{namespace}.servicebus.windows.net/;SharedAccessKeyName={rule};SharedAccessKey={key}"


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def eventhubs_like_broker(cfg: Config, sasl_port: int, ca: TestCA, password: str) -> LocalKafka:
    """A LocalKafka with the Event Hubs-like listener on 127.0.0.1:sasl_port, besides its plaintext one."""
    prefix = f"listener.name.{LISTENER.lower()}"
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"user_{EVENTHUBS_USERNAME}={_jaas_quote(password)};")
    props = {
        "sasl.enabled.mechanisms": "PLAIN",
        f"{prefix}.sasl.enabled.mechanisms": "PLAIN",
        f"{prefix}.plain.sasl.jaas.config": jaas,
        f"{prefix}.ssl.keystore.type": "PEM",
        f"{prefix}.ssl.keystore.certificate.chain": _pem_one_line(ca.server_cert),
        f"{prefix}.ssl.keystore.key": _pem_one_line(ca.server_key),
        f"{prefix}.ssl.truststore.type": "PEM",
        f"{prefix}.ssl.truststore.certificates": _pem_one_line(ca.ca_cert),
        "auto.create.topics.enable": "false",
        # Event Hubs closes the connection on a request above this size; so does Kafka past socket.request.max.bytes.
        "socket.request.max.bytes": str(EVENTHUBS_CONNECTION_LIMIT_BYTES),
    }
    return LocalKafka(cfg, extra_properties=props, extra_listeners=[f"{LISTENER}://127.0.0.1:{sasl_port}"])


def _pem_one_line(path: Path) -> str:
    """Kafka reads inline PEM from a properties value; newlines are escaped for the properties file."""
    return path.read_text().strip().replace("\n", "\\n")


def eventhubs_client_config(broker: LocalKafka, sasl_port: int, ca: TestCA, password: str) -> KafkaConfig:
    """What a user would put in peregrine.yaml for this broker: the eventhubs profile and nothing else."""
    k = broker.cfg.kafka
    return KafkaConfig(bootstrap_servers=f"127.0.0.1:{sasl_port}", profile="eventhubs", sasl_password=password,
                       ssl_ca_location=str(ca.ca_cert), topics=k.topics, events_partitions=k.events_partitions,
                       alerts_partitions=k.alerts_partitions, port=k.port, controller_port=k.controller_port)
