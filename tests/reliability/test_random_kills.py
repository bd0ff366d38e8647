"""SIGKILL at ten random moments of a 200k-event labelled stream: after the last restart,
everything stored equals the oracle's account of the produced records, every retraining
trigger was delivered at least once under one webhook id, every alert transition was told.

Each kill waits until the stored progress passed a random point of the stream, then lands a
random 0-200 ms later: mid-batch, mid-checkpoint, inside a window close or an outbox delivery,
or between them. Its own file, so pytest-xdist (``--dist loadfile``) runs it beside the fault
points rather than after them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.reliability.oracle import hours_ago
from tests.reliability.scenarios import Report, deliveries, scenario
from tests.reliability.traffic import alerting_config, labelled_traffic
from tests.support.daemon import kill_when
from tests.support.kafka import TopicFactory
from tests.support.receiver import Receiver
from tests.support.reliability import Figures

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

MODELS = ("fraud", "churn")


@pytest.mark.slow
def test_sigkill_at_ten_random_moments_of_a_200k_labelled_stream(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    preferred_database_url: str,
    receiver: Receiver,
    report: Report,
) -> None:
    """Ten SIGKILLs at random moments (each a random 0-200 ms after the stored progress passed
    a random point), then a last run: the final state equals the oracle's, every trigger was
    delivered at least once under one webhook id, every alert transition told at least once."""
    traffic = labelled_traffic(
        24, 1100, start_ms=hours_ago(4), burst=range(10, 13), seed=11, too_large=True
    )
    s = scenario(
        tmp_path, kafka_bootstrap, topic_factory, preferred_database_url,
        traffic.predictions, traffic.labels,
        **alerting_config(receiver.port, traffic.burst_threshold(), MODELS),
    )  # fmt: skip
    rng = random.Random(20261127)
    for target in sorted(rng.uniform(0.05, 0.9) * s.produced for _ in range(10)):
        kill_when(s.dep, lambda t=target: s.dep.stored_offsets() >= t, s.log, rng)
        s.faults += 1
        assert s.dep.stored_offsets() < s.produced, "killed too late to matter"
    s.finish()

    found, expected = s.compare()
    told = deliveries(s, receiver, expected, traffic.burst_threshold(), exact=False, resent=None)
    report(Figures(s.produced, s.faults, found.lost, found.doubled, told.triggers_lost))
    s.assert_equal(found, told)
