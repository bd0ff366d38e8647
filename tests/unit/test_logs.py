"""Logging set-up: JSON lines, console text, bound context and secret masking (monitor.logs)."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from monitor import logs
from monitor.logs import (
    ConsoleFormatter,
    JsonFormatter,
    SecretMasker,
    bind,
    register_secrets,
    secrets_of,
    setup_logging,
)
from monitor.settings import Settings

LOGGER = "monitor.test_logs"
SECRET = "s3cr3t-Value-42"  # noqa: S105 - a value planted to prove it is masked
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's test key


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Give each test the root logger, noisy loggers and registered secrets it found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in noisy.items():
        logging.getLogger(name).setLevel(value)
    logs._MASKER.clear()


def capture(fmt: logs.LogFormat = "json", level: str = "debug") -> io.StringIO:
    stream = io.StringIO()
    setup_logging(level, fmt, stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_ts_level_logger_message_and_extra_fields() -> None:
    """Each record is one JSON object with the fixed keys first and the extra fields."""
    stream = capture()
    extra = {"model": "churn", "topic": "predictions", "partition": 3, "offset": 1042}
    logging.getLogger(LOGGER).warning("event rejected: %s", "bad ts", extra=extra)
    logging.getLogger(LOGGER).info("second")
    first, second = lines(stream)
    assert list(first)[:4] == ["ts", "level", "logger", "message"]
    assert first["level"] == "warning"
    assert first["logger"] == LOGGER
    assert first["message"] == "event rejected: bad ts"
    assert {k: first[k] for k in extra} == extra
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    moment = datetime.strptime(first["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60
    assert second["message"] == "second"
    assert "exc" not in second and "model" not in second


def test_bind_adds_fields_inside_the_block_only() -> None:
    """bind() adds its fields to records made inside the block, nested binds merge, and
    nothing is left bound after the block."""
    stream = capture()
    log = logging.getLogger(LOGGER)
    with bind(topic="predictions", partition=2):
        log.info("outer")
        with bind(offset=7):
            log.info("inner")
        assert logs.bound() == {"topic": "predictions", "partition": 2}
    log.info("after")
    outer, inner, after = lines(stream)
    assert (outer["topic"], outer["partition"], "offset" in outer) == ("predictions", 2, False)
    assert (inner["topic"], inner["partition"], inner["offset"]) == ("predictions", 2, 7)
    assert not {"topic", "partition", "offset"} & set(after)
    assert logs.bound() == {}


def test_bind_is_removed_when_the_block_raises() -> None:
    """An exception leaving a bind() block still unbinds its fields."""
    with pytest.raises(RuntimeError), bind(partition=1):
        raise RuntimeError("boom")
    assert logs.bound() == {}


def test_bind_does_not_leak_to_other_threads_or_tasks() -> None:
    """A binding is per thread and per asyncio task: concurrent partitions keep their own."""
    stream = capture()
    log = logging.getLogger(LOGGER)
    with bind(partition=0):
        worker = threading.Thread(target=lambda: log.info("other thread"))
        worker.start()
        worker.join()

    async def process(partition: int) -> None:
        with bind(partition=partition):
            await asyncio.sleep(0)
            log.info("task %d", partition)

    async def both() -> None:
        await asyncio.gather(process(1), process(2))

    asyncio.run(both())
    thread, *tasks = [line for line in lines(stream) if line["logger"] == LOGGER]
    assert "partition" not in thread
    assert {t["message"]: t["partition"] for t in tasks} == {"task 1": 1, "task 2": 2}


def test_extra_wins_over_bound_and_reserved_names_are_renamed() -> None:
    """A call's extra overrides a bound field; a field named like a fixed key never hides it."""
    stream = capture()
    with bind(partition=1, level="oops"):
        logging.getLogger(LOGGER).info("hi", extra={"partition": 5})
    (line,) = lines(stream)
    assert (line["partition"], line["level"], line["level_"]) == (5, "info", "oops")


def test_values_that_are_not_json_become_strings() -> None:
    """Non-JSON values are written with str(), datetimes as ISO 8601, huge ints as text."""
    stream = capture()
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    extra = {"obj": object(), "when": when, "big": 2**70, "items": (1, "a"), "map": {1: None}}
    logging.getLogger(LOGGER).info("values", extra=extra)
    (line,) = lines(stream)
    assert line["obj"].startswith("<object object")
    assert (line["when"], line["big"]) == ("2024-05-01T12:00:00+00:00", str(2**70))
    assert (line["items"], line["map"]) == ([1, "a"], {"1": None})


def test_console_lines_are_readable_with_key_value_fields() -> None:
    """Console format: ``HH:MM:SS.mmm LEVEL logger: message key=value``, quoted when needed."""
    stream = capture("console")
    extra = {"model": "churn", "partition": 0, "reason": "bad ts"}
    logging.getLogger(LOGGER).warning("event rejected", extra=extra)
    line = stream.getvalue().rstrip("\n")
    pattern = (
        r"\d\d:\d\d:\d\d\.\d{3} WARNING monitor\.test_logs: event rejected "
        r'model=churn partition=0 reason="bad ts"'
    )
    assert re.fullmatch(pattern, line), line


def test_console_shows_the_traceback_under_the_line() -> None:
    """log.exception in console format prints the traceback after the message line."""
    stream = capture("console")
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger(LOGGER).exception("failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith(": failed")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: broken"


@pytest.mark.parametrize(
    ("stream", "expected"),
    [(io.StringIO(), JsonFormatter), (TtyStream(), ConsoleFormatter)],
    ids=["pipe-json", "tty-console"],
)
def test_auto_picks_console_on_a_terminal_and_json_otherwise(
    stream: io.StringIO, expected: type[logging.Formatter]
) -> None:
    """format auto: console when the stream is a terminal, JSON lines for anything else."""
    setup_logging("info", "auto", stream)
    (handler,) = logging.getLogger().handlers
    assert type(handler.formatter) is expected


def test_setup_twice_leaves_one_handler() -> None:
    """A second setup_logging replaces the first handler: no duplicated lines."""
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "json", first)
    setup_logging("info", "console", second)
    logging.getLogger(LOGGER).info("once")
    assert len(logging.getLogger().handlers) == 1
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_level_filters_and_noisy_libraries_are_quieted_unless_debug() -> None:
    """Records under the level are dropped; kafka & co. stay at WARNING unless level is debug."""
    stream = capture(level="info")
    logging.getLogger(LOGGER).debug("hidden")
    logging.getLogger("kafka.conn").info("chatter")
    logging.getLogger("httpx").warning("kept")
    assert [line["message"] for line in lines(stream)] == ["kept"]
    assert logging.getLogger("uvicorn.access").level == logging.WARNING
    setup_logging("debug", "json", stream)
    assert all(logging.getLogger(n).level == logging.NOTSET for n in logs.NOISY_LOGGERS)


def test_unknown_level_is_refused() -> None:
    """A misspelt level is an error, not silently INFO."""
    with pytest.raises(ValueError, match="'loud' is not a log level"):
        setup_logging("loud", "json", io.StringIO())


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_secret_never_appears(fmt: logs.LogFormat) -> None:
    """A registered secret is masked in the message, the args, extra values, bound fields and
    exception tracebacks, in both formats."""
    stream = capture(fmt)
    register_secrets([SECRET])
    log = logging.getLogger(LOGGER)
    log.info(f"inline {SECRET}")
    log.info("arg %s", SECRET)
    log.info("extra", extra={"header": f"Bearer {SECRET}", "nested": {"k": [SECRET]}})
    with bind(token=SECRET):
        log.info("bound")
    try:
        raise RuntimeError(f"login with {SECRET} refused")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("***") >= 6
    assert "login with *** refused" in text


def test_bad_log_arguments_neither_raise_nor_leak() -> None:
    """A format/args mismatch still writes a masked line instead of logging's raw error dump."""
    stream = capture()
    register_secrets([SECRET])
    logging.getLogger(LOGGER).info("%s and %s", SECRET)
    (line,) = lines(stream)
    assert SECRET not in stream.getvalue()
    assert line["message"].startswith("%s and %s (log arguments do not fit")


def test_short_registered_values_are_ignored() -> None:
    """Values under four characters are not masked: they would shred ordinary text."""
    masker = SecretMasker(["ab", "abc", "   ", "abcd"])
    assert masker.mask("ab abc abcd") == "ab abc ***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:pw1@db:5432/monitor", "postgresql://app:***@db:5432/monitor"),
        ("mailtos://bob:hunter2@smtp.example.com", "mailtos://bob:***@smtp.example.com"),
        ("https://ghp_abcdef@github.com/x", "https://***@github.com/x"),
        ("GET https://h/x?token=abc&page=2 ok", "GET https://h/x?token=***&page=2 ok"),
        (
            "https://h/?access_token=a&apikey=b&sig=c",
            "https://h/?access_token=***&apikey=***&sig=***",
        ),
        ("https://h/?X-Amz-Signature=f00&design=1", "https://h/?X-Amz-Signature=***&design=1"),
        ("https://h/?auth=x;secret=y#frag", "https://h/?auth=***;secret=***#frag"),
        ("http://host:8080/path?page=1", "http://host:8080/path?page=1"),
        ("bob@example.com wrote a=b", "bob@example.com wrote a=b"),
    ],
)
def test_url_credentials_are_masked_without_registration(text: str, expected: str) -> None:
    """URL passwords, token userinfo and secret query values are masked even if unregistered;
    ordinary URLs, ports and e-mail addresses are left alone."""
    assert SecretMasker().mask(text) == expected


def test_unregistered_url_secrets_are_masked_in_log_lines() -> None:
    """The formatter applies URL masking to messages and extra values."""
    stream = capture()
    log = logging.getLogger(LOGGER)
    log.info("connecting to %s", "postgresql://app:pw1@db/monitor")
    log.info("posting", extra={"url": "https://h/hook?token=abc123"})
    first, second = lines(stream)
    assert first["message"] == "connecting to postgresql://app:***@db/monitor"
    assert second["url"] == "https://h/hook?token=***"


def test_secrets_of_finds_every_secret_in_settings() -> None:
    """secrets_of() returns each SecretStr value of Settings and the parts that can leak alone:
    URL passwords, secret query values, bearer tokens and the webhook key."""
    settings = Settings.from_mapping(
        {
            "database": {"url": "postgresql://monitor:db-Pass%21word@db:5432/monitor"},
            "http": {"token": "api-token-123456"},
            "kafka": {"security": {"sasl_plain_password": "kafka-pass-99"}},
            "channels": {"chat": {"urls": ["https://chat.example.com/hooks/abc?token=chat-tok-1"]}},
            "triggers": {
                "retrain": {
                    "url": "https://ci.example.com/hooks/retrain",
                    "secret": WEBHOOK_SECRET,
                    "headers": {"Authorization": "Bearer trigger-bearer-77"},
                }
            },
        }
    )
    found = set(secrets_of(settings))
    expected = {
        "postgresql://monitor:db-Pass%21word@db:5432/monitor",
        "db-Pass%21word",
        "db-Pass!word",
        "monitor:db-Pass%21word",
        "api-token-123456",
        "kafka-pass-99",
        "https://chat.example.com/hooks/abc?token=chat-tok-1",
        "chat-tok-1",
        "https://ci.example.com/hooks/retrain",
        WEBHOOK_SECRET,
        WEBHOOK_SECRET.removeprefix("whsec_"),
        "Bearer trigger-bearer-77",
        "trigger-bearer-77",
    }
    assert found == expected
    assert "sqlite:///monitor.db" in secrets_of(Settings())  # the default URL is a secret too


def test_registered_settings_secrets_are_masked_end_to_end() -> None:
    """After register_secrets(secrets_of(settings)), a bare password or token never shows."""
    settings = Settings.from_mapping(
        {
            "database": {"url": "postgresql://u:only-the-password@db/m"},
            "http": {"token": "tok-9876"},
        }
    )
    stream = capture()
    register_secrets(secrets_of(settings))
    logging.getLogger(LOGGER).warning("auth failed for %s with %s", "only-the-password", "tok-9876")
    assert lines(stream)[0]["message"] == "auth failed for *** with ***"
