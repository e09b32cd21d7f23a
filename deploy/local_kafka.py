"""The real local Apache Kafka broker: fetched from Maven Central with Maven, one KRaft node on 127.0.0.1."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from schemas.topology import TopicSpec, topology
from settings.config import Config

CACHE_ROOT = Path(os.environ.get("PEREGRINE_CACHE", Path.home() / ".cache" / "peregrine"))

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.peregrine</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
"""

LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


class KafkaError(RuntimeError):
    """A local-broker failure, phrased as what is wrong and what to do."""


@dataclass
class LocalKafka:
    """One broker instance: its port, its state directory, its process."""

    cfg: Config
    extra_properties: dict[str, str] = field(default_factory=dict)
    extra_listeners: list[str] = field(default_factory=list)  # e.g. "SASL_SSL://127.0.0.1:9094" (Event Hubs-like)

    @property
    def home(self) -> Path:
        return self.cfg.state_path / "kafka"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.cfg.kafka.port}"

    # -- fetching -------------------------------------------------------------------------------------------
    def lib_dir(self) -> Path:
        return CACHE_ROOT / f"kafka-{self.cfg.kafka.version}" / "lib"

    def fetch(self) -> Path:
        lib = self.lib_dir()
        if (lib / ".complete").exists():
            return lib
        if shutil.which("java") is None:
            raise KafkaError("Java is missing: install a JRE 17 (apt-get install openjdk-17-jre-headless)")
        if shutil.which("mvn") is None:
            raise KafkaError("Maven is missing: install it (apt-get install maven) to fetch Kafka from Maven Central")
        work = lib.parent
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(POM.format(version=self.cfg.kafka.version))
        tmp = work / "lib.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
            capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise KafkaError(f"fetching Kafka {self.cfg.kafka.version} from Maven Central failed: {' | '.join(tail)}")
        shutil.rmtree(lib, ignore_errors=True)
        tmp.rename(lib)
        (lib / ".complete").write_text(self.cfg.kafka.version)
        return lib

    # -- lifecycle ------------------------------------------------------------------------------------------
    def _properties(self) -> str:
        k = self.cfg.kafka
        listeners = [f"PLAINTEXT://127.0.0.1:{k.port}", f"CONTROLLER://127.0.0.1:{k.controller_port}"]
        listeners += self.extra_listeners
        protocol_map = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        protocol_map += [f"{x.split('://')[0]}:{x.split('://')[0]}" for x in self.extra_listeners]
        advertised = [x for x in listeners if not x.startswith("CONTROLLER")]
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{k.controller_port}",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocol_map),
            "log.dirs": str(self.home / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(max(k.max_record_bytes, 1_048_576) + 65_536),
            "log.segment.bytes": str(64 << 20),
        }
        props.update(self.extra_properties)
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _java_cmd(self, lib: Path, main: str, *args: str) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
                "-cp", f"{lib}/*", main, *args]

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def answers(self, timeout: float = 2.0) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            with socket.create_connection(("127.0.0.1", self.cfg.kafka.port), timeout=timeout):
                pass
            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=timeout)
            return True
        except Exception:
            return False

    def start(self, wait_s: float = 90.0) -> int:
        if shutil.which("java") is None:
            raise KafkaError("Java is missing: install a JRE 17 (apt-get install openjdk-17-jre-headless)")
        pid = self.running_pid()
        if pid is not None:
            self.wait_ready(wait_s)
            self.create_topics()
            return pid
        lib = self.fetch()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j.properties").write_text(LOG4J.format(log=self.home / "kafka.log4j.log"))
        props = self.home / "server.properties"
        props.write_text(self._properties())
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(self._java_cmd(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                                 capture_output=True, text=True)
            if fmt.returncode != 0:
                raise KafkaError(f"formatting the KRaft log dir failed: {fmt.stderr.strip() or fmt.stdout.strip()}")
        self._check_port_free(self.cfg.kafka.port)
        self._check_port_free(self.cfg.kafka.controller_port)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(self._java_cmd(lib, "kafka.Kafka", str(props)), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        self.wait_ready(wait_s, proc)
        self.create_topics()
        return proc.pid

    def _check_port_free(self, port: int) -> None:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise KafkaError(f"port 127.0.0.1:{port} is taken by another process: stop it or set kafka.port") from exc

    def wait_ready(self, wait_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise KafkaError(f"the Kafka broker exited with {proc.returncode} at start: see {self.log_file}")
            if self.answers():
                return
            time.sleep(0.5)
        raise KafkaError(f"the Kafka broker did not answer on {self.bootstrap} within {wait_s:.0f}s: see {self.log_file}")

    def create_topics(self, specs: list[TopicSpec] | None = None) -> list[str]:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        existing = set(admin.list_topics(timeout=10).topics)
        wanted = [s for s in (specs or topology(self.cfg)) if s.name not in existing]
        if not wanted:
            return []
        futures = admin.create_topics([NewTopic(s.name, s.partitions, self.cfg.kafka.replication_factor,
                                                config=s.kafka_config()) for s in wanted])
        for name, fut in futures.items():
            try:
                fut.result(30)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaError(f"creating topic {name} failed: {exc}") from exc
        return [s.name for s in wanted]

    def stop(self, timeout: float = 30.0) -> bool:
        pid = self.running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            except OSError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> str:
        pid = self.running_pid()
        if pid is None:
            return f"stopped (state in {self.home})"
        return f"running, pid {pid}, {'answering' if self.answers() else 'NOT answering'} on {self.bootstrap}"
