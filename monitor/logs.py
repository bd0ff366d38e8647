"""Logging set-up: JSON lines or console text, structured context, and no secret ever written.

DESIGN.md §8: log structured events with model, topic, partition and offset bound, never a
secret. Context comes from ``extra={...}`` on a call and from :func:`bind` (a contextvar, so
a binding made while the run loop processes a partition stays with that thread or task).
Masking lives in the formatters rather than at call sites: a forgotten ``mask_url`` in one
``log.warning`` must not leak a password, and every handler built on these formatters masks.
Standard library only (plus orjson), so a log line costs one dict and one ``dumps``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import IO, Any, Literal
from urllib.parse import unquote, urlsplit

import orjson
from pydantic import BaseModel, SecretStr

__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "LogFormat",
    "SecretMasker",
    "bind",
    "bound",
    "current_setup",
    "register_secrets",
    "resolve_format",
    "secrets_of",
    "setup_logging",
]

LogFormat = Literal["auto", "console", "json"]
MASK = "***"
NOISY_LOGGERS = ("kafka", "alembic", "httpx", "httpcore", "apprise", "uvicorn.access")

# --- masking ----------------------------------------------------------------------------------

_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#\s@]*)(?P<password>:[^/?#\s@]*)?@"
)
_QUERY = re.compile(r"(?P<head>[?&;](?P<key>[^=&#;?\s]+)=)(?P<value>[^&#;\s\"'<>]*)")
_SENSITIVE_KEY = re.compile(
    r"pass(?:word|wd)?|pwd|secret|token|key|signature|auth|credential|(?:^|[_.-])sig(?:$|[_.-])",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match[str]) -> str:
    if match["password"] is None:  # https://TOKEN@host: the whole userinfo is the credential
        return f"{match['scheme']}{MASK}@"
    return f"{match['scheme']}{match['user']}:{MASK}@"


def _mask_query(match: re.Match[str]) -> str:
    if match["value"] and _SENSITIVE_KEY.search(match["key"]):
        return f"{match['head']}{MASK}"
    return match[0]


class SecretMasker:
    """Replaces registered secrets, URL passwords and secret query values with ``***``.

    Registered values go first and whole (a Slack webhook URL is a secret in its path, which
    no URL rule would find); then URL credentials are masked even if nobody registered them.
    Values shorter than :attr:`MIN_LENGTH` are ignored: masking ``"ab"`` everywhere would
    shred ordinary text and hide nothing worth hiding.
    """

    MIN_LENGTH = 4

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.register(secrets)

    def register(self, values: Iterable[str]) -> None:
        """Add secrets to redact from now on (start-up time; masking stays lock-free)."""
        with self._lock:
            self._secrets.update(v for v in values if len(v.strip()) >= self.MIN_LENGTH)
            # Longest first, so a whole URL wins over the password inside it.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def secrets(self) -> set[str]:
        with self._lock:
            return set(self._secrets)

    def clear(self) -> None:
        """Forget every registered secret (tests; a daemon registers once and keeps them)."""
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def mask(self, text: str) -> str:
        """``text`` with every registered secret and URL credential replaced by ``***``."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "@" in text:
            text = _USERINFO.sub(_mask_userinfo, text)
        if "=" in text:
            text = _QUERY.sub(_mask_query, text)
        return text


_MASKER = SecretMasker()


def register_secrets(values: Iterable[str]) -> None:
    """Redact these values from every log line written through :func:`setup_logging`."""
    _MASKER.register(values)


def _url_parts(value: str) -> list[str]:
    """Credentials inside a URL: userinfo, password (raw and decoded), secret query values."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        found += [password, unquote(password)] if colon else [user, unquote(user)]
        found.append(userinfo)
    for match in _QUERY.finditer("?" + parts.query if parts.query else ""):
        if _SENSITIVE_KEY.search(match["key"]):
            found += [match["value"], unquote(match["value"])]
    return found


def _derived(value: str) -> list[str]:
    """Pieces of a secret that may be logged on their own."""
    found = _url_parts(value) if "://" in value else []
    scheme, space, credential = value.strip().partition(" ")
    if space and scheme.isalpha():  # "Bearer abc...": the credential alone is secret too
        found.append(credential.strip())
    if value.startswith("whsec_"):  # the HMAC key without its prefix
        found.append(value[len("whsec_") :])
    return found


def _secret_values(node: Any) -> Iterator[str]:
    if isinstance(node, SecretStr):
        yield node.get_secret_value()
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _secret_values(getattr(node, name))
    elif isinstance(node, Mapping):
        for item in node.values():
            yield from _secret_values(item)
    elif isinstance(node, list | tuple | set | frozenset):
        for item in node:
            yield from _secret_values(item)


def secrets_of(settings: BaseModel) -> list[str]:
    """Every ``SecretStr`` value in ``settings`` (walked recursively), plus the parts of each
    that could appear alone in a log line: a URL's password, a bearer token, a webhook key."""
    found: dict[str, None] = {}  # ordered and de-duplicated
    for value in _secret_values(settings):
        for item in (value, *_derived(value)):
            if item:
                found[item] = None
    return list(found)


# --- structured context -----------------------------------------------------------------------

_BOUND: ContextVar[Mapping[str, Any]] = ContextVar(
    "monitor_log_context", default=MappingProxyType({})
)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log record made inside the block (nested binds merge).

    A contextvar rather than a logger adapter: the run loop binds topic and partition once,
    and the stores and rules it calls log with them without being passed anything.
    """
    token = _BOUND.set(MappingProxyType({**_BOUND.get(), **fields}))
    try:
        yield
    finally:
        _BOUND.reset(token)


def bound() -> dict[str, Any]:
    """The fields bound in the current context."""
    return dict(_BOUND.get())


# Attributes every LogRecord has; anything else on a record came from ``extra={...}``.
# color_message is uvicorn's ANSI duplicate of the message, not context.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_RESERVED = frozenset(("ts", "level", "logger", "message", "exc", "stack"))


def _json_safe(value: Any, masker: SecretMasker, depth: int = 0) -> Any:
    """A value orjson writes as-is, with strings masked; anything else becomes its str()."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, masker, depth + 1) for v in value]
    if depth < 4 and isinstance(value, Mapping):
        return {masker.mask(str(k)): _json_safe(v, masker, depth + 1) for k, v in value.items()}
    try:
        return masker.mask(str(value))
    except Exception:  # a broken __str__ must not lose the log line
        return f"<unprintable {type(value).__name__}>"


class _Formatter(logging.Formatter):
    """Shared by both formats: message, context fields and traceback, each one masked."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        super().__init__()
        self.masker = _MASKER if masker is None else masker

    def message(self, record: logging.LogRecord) -> str:
        # Never raise: logging's handleError would print the raw arguments to stderr.
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg} (log arguments do not fit: {record.args!r})"
        return self.masker.mask(text)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        extra = {
            k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and k[:1] != "_"
        }
        return {
            f"{k}_" if k in _RESERVED else k: _json_safe(v, self.masker)
            for k, v in {**_BOUND.get(), **extra}.items()
        }

    def traceback(self, record: logging.LogRecord) -> str | None:
        text = self.formatException(record.exc_info) if record.exc_info else record.exc_text
        return self.masker.mask(text) if text else None

    def stack(self, record: logging.LogRecord) -> str | None:
        return self.masker.mask(record.stack_info) if record.stack_info else None


class JsonFormatter(_Formatter):
    """One JSON object per line: ts, level, logger, message, context fields, exc, stack."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        document: dict[str, Any] = {
            "ts": f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.message(record),
            **self.fields(record),
        }
        for key, text in (("exc", self.traceback(record)), ("stack", self.stack(record))):
            if text:
                document[key] = text
        return orjson.dumps(document).decode()


_BARE = re.compile(r"[^\s\"'=]+")


def _console_value(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return orjson.dumps(value).decode()


class ConsoleFormatter(_Formatter):
    """``HH:MM:SS.mmm LEVEL logger: message key=value ...`` in local time, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{clock}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: "
        line += self.message(record)
        line += "".join(f" {k}={_console_value(v)}" for k, v in self.fields(record).items())
        for text in (self.traceback(record), self.stack(record)):
            if text:
                line += "\n" + text
        return line


# --- set-up -----------------------------------------------------------------------------------


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def resolve_format(format: LogFormat, stream: IO[str]) -> Literal["console", "json"]:
    """``auto``: console for a person at a terminal, JSON lines for a collector."""
    if format == "auto":
        return "console" if _isatty(stream) else "json"
    return format


def _level(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"'{level}' is not a log level (debug, info, warning or error)")
    return number


def current_setup() -> tuple[str, Literal["console", "json"], list[str]] | None:
    """The level, format and secrets this process logs with (None: `setup_logging` was not
    called), so that a helper process (`monitor.ingest.fetcher`) writes its lines alike."""
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.get_name() == "monitor":
            chosen: Literal["console", "json"] = (
                "json" if isinstance(handler.formatter, JsonFormatter) else "console"
            )
            return logging.getLevelName(root.level), chosen, sorted(_MASKER.secrets())
    return None


def current_stream_fd() -> int | None:
    """The file descriptor this process's log lines go to (None: `setup_logging` was not
    called, or its stream has none), a helper process's stderr: the demo logs to a file,
    and a helper's lines would otherwise cross its live view in the terminal."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "monitor" and isinstance(handler, logging.StreamHandler):
            try:
                handler.flush()
                return int(handler.stream.fileno())
            except (AttributeError, OSError, ValueError):  # a stream with no descriptor
                return None
    return None


def setup_logging(level: str, format: LogFormat = "auto", stream: IO[str] | None = None) -> None:
    """Send every log record to ``stream`` (default: ``sys.stderr`` at call time) as masked
    JSON lines or console text, replacing whatever handlers the root logger had.

    Idempotent: a second call replaces the first handler, so tests and ``run`` after
    ``db upgrade`` never double lines. Noisy libraries are held at WARNING unless ``level``
    is debug, when they are reset to inherit it.
    """
    number = _level(level)
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    handler.set_name("monitor")
    chosen = resolve_format(format, out)
    handler.setFormatter(JsonFormatter() if chosen == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    quiet = logging.NOTSET if number <= logging.DEBUG else max(logging.WARNING, number)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
