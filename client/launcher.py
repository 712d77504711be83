"""Start a local server and agents as real subprocesses (the demo, tests, and quick trials).

Needs the `[server]` and `[agent]` extras installed in the same interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgescore.client.api import Client


@dataclass
class TlsFiles:
    """PEM files for a TLS stack; the server always serves TLS when a LocalStack gets these."""

    ca: str                   # signed the server certificate: agents and clients trust it
    server_cert: str
    server_key: str
    client_ca: str = ""       # set: mutual TLS, the server demands client certs signed by it
    client_cert: str = ""     # presented by the stack's agents and clients
    client_key: str = ""


class LocalStack:
    """`with LocalStack(agents={"local-cpu": 1}) as stack: Client(stack.target)...`"""

    def __init__(self, agents: dict[str, int] | None = None, token: str = "",
                 server_args: list[str] | None = None, log_dir: str | None = None,
                 startup_timeout: float = 180.0, tls: TlsFiles | None = None,
                 api_token: str = "") -> None:
        self.tls = tls
        self.api_token = api_token  # clients of this stack present it (the server demands it)
        self.agent_counts = {"local-cpu": 1} if agents is None else dict(agents)
        self.token = token
        self.server_args = list(server_args or [])
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="edgescore-")
        self.log_dir = Path(log_dir or self._tmp.name)
        self.server: subprocess.Popen | None = None
        self.agents: list[subprocess.Popen] = []
        self.port = 0
        self.metrics_port = -1

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], log_name: str, python: str | None = None
               ) -> subprocess.Popen:
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        # onnxruntime would otherwise write telemetry files under ~/.cache on import.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ORT_DISABLE_TELEMETRY": "1"}
        # Another environment's interpreter starts outside the checkout, whose `edgescore/`
        # folder would otherwise shadow that environment's installed package.
        cwd = self._tmp.name if python else None
        return subprocess.Popen([python or sys.executable, "-m", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def start_server(self, port: int = 0) -> None:
        """Start (or restart, on the same `port`) the server and wait until it serves."""
        port_file = Path(self._tmp.name) / "ports.json"
        port_file.unlink(missing_ok=True)
        args = ["edgescore.server", "--address", f"127.0.0.1:{port}", "--metrics-address",
                "127.0.0.1", "--metrics-port", "0", "--port-file", str(port_file),
                "--grace-seconds", "2", *self.server_args]
        if "--db" not in self.server_args:
            # The stack's own results store: kept across restarts of this stack, never shared.
            args += ["--db", str(Path(self._tmp.name) / "results.db")]
        if self.token:
            args += ["--fleet-token", self.token]
        if self.api_token:
            args += ["--api-token", self.api_token]
        if self.tls:
            args += ["--tls-cert", self.tls.server_cert, "--tls-key", self.tls.server_key]
            if self.tls.client_ca:
                args += ["--tls-client-ca", self.tls.client_ca]
        self.server = self._spawn(args, "server.log")
        deadline = time.monotonic() + self.startup_timeout
        while not port_file.exists():
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.read_log('server.log')}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.1)
        ports = json.loads(port_file.read_text())
        self.port, self.metrics_port = ports["port"], ports["metrics_port"]

    def tls_args(self, client_cert: bool = True) -> list[str]:
        """Agent / CLI flags that trust this stack's server (and present the client cert)."""
        if not self.tls:
            return []
        args = ["--tls-ca", self.tls.ca]
        if client_cert and self.tls.client_cert:
            args += ["--tls-cert", self.tls.client_cert, "--tls-key", self.tls.client_key]
        return args

    def client(self, **kw: object) -> Client:
        """A Client for this stack, with its token and TLS files."""
        if self.tls:
            kw = {"tls_ca": self.tls.ca, "tls_cert": self.tls.client_cert,
                  "tls_key": self.tls.client_key, **kw}
        if self.api_token:
            kw = {"token": self.api_token, **kw}
        return Client(self.target, **kw)  # type: ignore[arg-type]

    def start_agent(self, device_class: str, token: str | None = None,
                    extra: list[str] | None = None, tls: bool = True,
                    python: str | None = None) -> subprocess.Popen:
        """Start an agent; tls=False makes it dial in plain text even to a TLS server; `python`:
        the interpreter (of another environment, e.g. a board-like install), default this one."""
        args = ["edgescore.device_agent", "--server", self.target,
                "--device-class", device_class, *(self.tls_args() if tls else []),
                *(extra or [])]
        token = self.token if token is None else token
        if token:
            args += ["--token", token]
        proc = self._spawn(args, f"agent-{device_class}-{len(self.agents)}.log", python)
        self.agents.append(proc)
        return proc

    def wait_for_agents(self, counts: dict[str, int], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.client(timeout=5) as client:
            while True:
                online = {d.device_class: d.agents_online for d in client.devices()}
                if all(online.get(c, 0) >= n for c, n in counts.items()):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"agents not online: want {counts}, have {online}")
                time.sleep(0.2)

    def read_log(self, name: str) -> str:
        path = self.log_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> LocalStack:
        try:
            self.start_server()
            for device_class, n in self.agent_counts.items():
                for _ in range(n):
                    self.start_agent(device_class)
            self.wait_for_agents(self.agent_counts)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def terminate(proc: subprocess.Popen, timeout: float = 15.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_server(self) -> int | None:
        code = self.terminate(self.server) if self.server else None
        self.server = None
        return code

    def stop(self) -> None:
        for proc in self.agents:
            self.terminate(proc)
        self.agents.clear()
        self.stop_server()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()
