"""Soak: `monitor run` for N minutes of mixed traffic, killed at random, then the oracle.

    scripts/soak [--minutes 15] [--kill-every 45] [--calm-minutes M] [--rate 300]
                 [--database URL] [--seed N]

A private embedded broker gets labelled traffic (tests/reliability/traffic.py: predictions of
two models and versions, labels minutes later, late stragglers, unusable records, NaNs, a
volume burst that fires alerts and signed retraining triggers to a local receiver), produced
at ``--rate`` predictions per second (labels in proportion) for ``--minutes``. Meanwhile
`monitor run` is stopped every ``--kill-every`` seconds on average (exponential), by SIGTERM
or SIGKILL at random, and started again at once; its resident memory is sampled every 5 s.
The last ``--calm-minutes`` (default: a third of the run) have no stops, so one process
lives long enough for its RSS to show a trend. At the end one last run consumes what is left
and flushes the windows; then the database is compared with the oracle
(tests/reliability/oracle.py) and the receiver's requests with the alert episodes. It prints
the figures, RSS first/last/max over every process (sampled from 10 s after each start), the
longest-lived one's per minute, and exits 1 on any difference.

Not part of CI (it takes the minutes it is given). ``--database`` (or
``$MONITOR_TEST_DATABASE_URL``: a throwaway schema of that PostgreSQL) else a temporary SQLite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.demo.broker import EmbeddedBroker, create_topics  # noqa: E402
from tests.reliability.oracle import (  # noqa: E402
    Terms,
    check,
    check_deliveries,
    expect,
    expected_episodes,
    hours_ago,
    now_ms,
)
from tests.reliability.traffic import alerting_config, labelled_traffic  # noqa: E402
from tests.support.daemon import Deployment, deployment  # noqa: E402
from tests.support.databases import postgres_schema  # noqa: E402
from tests.support.kafka import produce  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

MODELS = ("fraud", "churn")
PARTITIONS = 4
WINDOWS = 48  # five-minute windows of event time, ending two hours ago
SAMPLE_S = 5.0
WARM_UP_S = 10.0  # RSS is sampled from this long after a start on (imports, first windows)


@dataclass
class Soak:
    """The running state: processes started, kills sent, RSS samples (t, pid, kB)."""

    started: float = field(default_factory=time.monotonic)
    kills: dict[str, int] = field(default_factory=lambda: {"SIGTERM": 0, "SIGKILL": 0})
    unclean_sigterm: int = 0
    processes: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def sample(self, process: subprocess.Popen[bytes]) -> None:
        kb = rss_kb(process.pid)
        if kb is not None:
            self.samples.append((time.monotonic() - self.started, process.pid, kb))


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[str]:
    configured = url or os.environ.get("MONITOR_TEST_DATABASE_URL")
    if not configured:
        yield f"sqlite:///{tmp}/monitor.db"
        return
    if configured.startswith("sqlite"):
        yield configured
        return
    with postgres_schema(configured) as schema_url:
        yield schema_url


def producer(
    bootstrap: str,
    topics: tuple[str, str],
    records: tuple[list[tuple[int | None, bytes]], list[tuple[int | None, bytes]]],
    seconds: float,
    done: threading.Event,
) -> None:
    """Produce both topics' records evenly over ``seconds``, in order, a chunk a second."""
    began = time.monotonic()
    sent = [0, 0]
    while True:
        share = min(1.0, (time.monotonic() - began) / seconds)
        for i, (topic, items) in enumerate(zip(topics, records, strict=True)):
            upto = round(len(items) * share)
            if upto > sent[i]:
                produce(bootstrap, topic, items[sent[i] : upto])
                sent[i] = upto
        if share >= 1.0:
            done.set()
            return
        time.sleep(1.0)


def run_with_kills(
    dep: Deployment,
    log: Path,
    soak: Soak,
    until: threading.Event,
    kill_every: float,
    calm_at: float,
    seed: int,
) -> None:
    """Keep `monitor run` going, stopping it at random (SIGTERM or SIGKILL) until ``calm_at``
    (monotonic), then leaving the last one alone until ``until``."""
    rng = random.Random(seed)
    while not until.is_set():
        process = dep.start("run", log=log)
        soak.processes += 1
        deadline = time.monotonic() + rng.expovariate(1.0 / kill_every)
        if deadline > calm_at:
            deadline = float("inf")
        next_sample = time.monotonic() + WARM_UP_S
        while time.monotonic() < deadline and not until.is_set():
            if process.poll() is not None:
                raise SystemExit(f"monitor run exited {process.returncode} by itself; see {log}")
            if time.monotonic() >= next_sample:
                soak.sample(process)
                next_sample += SAMPLE_S
            time.sleep(0.2)
        if until.is_set():
            stop(process, signal.SIGTERM, soak)
            return
        stop(process, rng.choice((signal.SIGTERM, signal.SIGKILL)), soak)


def stop(process: subprocess.Popen[bytes], sig: signal.Signals, soak: Soak) -> None:
    soak.kills[sig.name] += 1
    process.send_signal(sig)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = None
    if sig == signal.SIGTERM and code != 0:
        soak.unclean_sigterm += 1


def rss_summary(soak: Soak) -> list[str]:
    if not soak.samples:
        return ["RSS: no samples"]
    kb = [k for _, _, k in soak.samples]
    lines = [
        f"RSS (MB) over {len(kb)} samples of {soak.processes} processes: first {kb[0] / 1024:.0f}, "
        f"last {kb[-1] / 1024:.0f}, max {max(kb) / 1024:.0f}"
    ]
    by_pid: dict[int, list[tuple[float, int]]] = {}
    for t, pid, k in soak.samples:
        by_pid.setdefault(pid, []).append((t, k))
    pid, series = max(by_pid.items(), key=lambda item: item[1][-1][0] - item[1][0][0])
    lived = series[-1][0] - series[0][0]
    lines.append(
        f"longest-lived process ({lived:.0f} s sampled): first {series[0][1] / 1024:.0f} MB, "
        f"last {series[-1][1] / 1024:.0f} MB, max {max(k for _, k in series) / 1024:.0f} MB"
    )
    minutes = {int((t - series[0][0]) // 60): k for t, k in series}  # the last of each minute
    trend = ", ".join(f"{m}: {k / 1024:.0f}" for m, k in sorted(minutes.items()))
    lines.append(f"  its RSS (MB) by minute sampled: {trend}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--kill-every", type=float, default=45.0, help="mean seconds")
    parser.add_argument(
        "--calm-minutes", type=float, default=None,
        help="the last minutes without stops, for a long-lived process's RSS (default: a third)",
    )  # fmt: skip
    parser.add_argument("--rate", type=float, default=300.0, help="predictions per second")
    parser.add_argument("--database", default=None)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    seconds = args.minutes * 60
    per_window = max(1, int(args.rate * seconds / (WINDOWS * len(MODELS) * 2 * 1.25)))
    traffic = labelled_traffic(
        WINDOWS, per_window, start_ms=hours_ago(2 + WINDOWS / 12), partitions=PARTITIONS,
        burst=range(WINDOWS // 3, WINDOWS // 3 + 6), seed=args.seed,
    )  # fmt: skip
    print(
        f"soak: {args.minutes:g} min, {len(traffic.predictions)} predictions and "
        f"{len(traffic.labels)} labels, a stop every {args.kill_every:g} s on average",
        flush=True,
    )
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="monitor-soak-")))
        broker = stack.enter_context(EmbeddedBroker(tmp_dir=tmp))
        receiver = stack.enter_context(Receiver())
        url = stack.enter_context(database(args.database, tmp))
        topics = ("predictions", "labels")
        create_topics(broker.bootstrap, {t: PARTITIONS for t in topics})
        config = alerting_config(receiver.port, traffic.burst_threshold(), MODELS)
        dep = deployment(tmp, broker.bootstrap, url, *topics, **config)
        if dep.run("db", "upgrade").returncode != 0:
            raise SystemExit("db upgrade failed")
        log = tmp / "run.log"
        soak = Soak()
        produced = threading.Event()
        feeding = threading.Thread(
            target=producer,
            args=(broker.bootstrap, topics, (traffic.predictions, traffic.labels), seconds,
                  produced),
            daemon=True,
        )  # fmt: skip
        feeding.start()
        calm = args.calm_minutes * 60 if args.calm_minutes is not None else seconds / 3
        calm_at = soak.started + seconds - calm
        run_with_kills(dep, log, soak, produced, args.kill_every, calm_at, args.seed)
        feeding.join()
        last = dep.start("run", "--exit-when-idle", "10s", "--flush", log=log)
        final = subprocess_wait(last, soak)
        terms = Terms.of(dep.config)
        expected = expect(terms, traffic.predictions, traffic.labels, now_ms=now_ms())
        found = check(dep, expected, terms)
        episodes = expected_episodes(expected.counted, traffic.burst_threshold())
        told = check_deliveries(dep, receiver.requests(), episodes, exact=False, resent=None)
        elapsed = time.monotonic() - soak.started
        print(f"\nsoak finished in {elapsed / 60:.1f} min; last run exited {final}")
        print(
            f"events produced {traffic.produced}, faults injected "
            f"{sum(soak.kills.values())} ({soak.kills['SIGTERM']} SIGTERM, "
            f"{soak.kills['SIGKILL']} SIGKILL; {soak.unclean_sigterm} SIGTERM not clean), "
            f"events lost {found.lost}, counted twice {found.doubled}, "
            f"triggers lost {told.triggers_lost}"
        )
        for line in rss_summary(soak):
            print(line)
        differences = [*found, *told]
        for line in differences[:20]:
            print("DIFFERENCE:", line)
        if differences or final != 0 or soak.unclean_sigterm:
            print(f"FAILED (log: {log} is removed with the temporary directory)")
            print(log.read_text(errors="replace")[-3000:])
            return 1
        print("OK: the database equals the oracle's")
        return 0


def subprocess_wait(process: subprocess.Popen[bytes], soak: Soak) -> int | None:
    """Wait for the last run (its RSS is not sampled: it only catches up and flushes)."""
    return process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
