"""Chat and email notifications through apprise: the only module that imports apprise.

Why this shape:

- **One `apprise.Apprise` per channel, built up front.** A URL apprise cannot use (unknown
  scheme, missing token) makes ``add()`` return False; we turn that into a `ConfigError`
  when the daemon starts, not into a retry loop hours later when the first alert fires.
- **Failures are outcomes, not exceptions.** `Notifier.send` returns an `Outcome`; the outbox
  stores it and schedules the next attempt (DESIGN.md §8). apprise reports no reason per URL,
  so a failure says how many of the channel's URLs failed and which services they were.
  A partial delivery is retried as a whole: a duplicate message beats a lost page.
- **Durable retries belong to the outbox.** apprise's own retry is a blocking sleep in the
  calling thread that a restart forgets, so a ``?retry=`` above 1 is capped at 1.
- **`send` blocks.** Besides the network round trips, apprise throttles each URL with a sleep
  (its ``request_rate_per_sec``: 5.5 s between two mails to one ``mailto://`` URL, none for
  ``json://``), so the caller runs it in a worker thread, never on an event loop.
- **No secrets in errors.** apprise URLs carry tokens in the user-info, the host, the path or
  the query depending on the service, so a configuration error names the channel, the URL's
  position and its scheme only, and exception texts pass through `mask_url`.
"""

from __future__ import annotations

from collections.abc import Mapping

import apprise

from monitor.actions.delivery import Outcome
from monitor.actions.messages import Message
from monitor.errors import ConfigError
from monitor.settings import ChannelConfig, mask_url

__all__ = ["MAX_APPRISE_RETRY", "Notifier"]

MAX_APPRISE_RETRY = 1  # apprise's in-thread retries per URL; the outbox retries durably


class Notifier:
    """Sends rendered messages to named channels (see the module docstring)."""

    def __init__(self, channels: Mapping[str, ChannelConfig]) -> None:
        """Build every channel now; raises `ConfigError` listing each URL apprise rejects."""
        self._channels = dict(channels)
        self._asset = apprise.AppriseAsset(app_id="monitor", app_desc="ML monitoring")
        self._targets: dict[str, apprise.Apprise] = {}
        problems: list[str] = []
        for name, config in self._channels.items():
            self._targets[name] = self._build(name, config, problems)
        if problems:
            raise ConfigError(problems)

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channel names."""
        return tuple(self._channels)

    def send_resolved(self, channel: str) -> bool:
        """Whether ``channel`` wants resolved notices (an unknown channel gets nothing)."""
        config = self._channels.get(channel)
        return config is not None and config.send_resolved

    def send(self, channel: str, message: Message) -> Outcome:
        """Deliver ``message`` to every URL of ``channel``; blocks for the network round trips.

        ``delivered`` when every URL accepted it; ``retry`` when any failed (or a plugin
        raised); ``permanent`` for a channel that is not configured.
        """
        target = self._targets.get(channel)
        if target is None:
            return Outcome("permanent", error=f"channel {channel}: not configured")
        try:
            result = target.notify(
                body=message.body,
                title=message.title,
                notify_type=apprise.NotifyType(message.notify_type),
                body_format=apprise.NotifyFormat.MARKDOWN,
            )
        except Exception as exc:  # a plugin bug must not kill the outbox worker
            return Outcome("retry", error=f"channel {channel}: {_describe(exc)}")
        with result:  # releases the log capture apprise keeps per call
            if result:
                return Outcome("delivered")
            return Outcome("retry", error=_failure(channel, result, len(target)))

    def _build(self, name: str, config: ChannelConfig, problems: list[str]) -> apprise.Apprise:
        """One `apprise.Apprise` holding the channel's URLs, one ``add`` per URL."""
        target = apprise.Apprise(asset=self._asset)
        for index, secret in enumerate(config.urls):
            url = secret.get_secret_value().strip()
            # a list, so apprise takes the string as one URL instead of splitting it
            if not target.add([url]):
                problems.append(f"channels.{name}.urls[{index}]: {_rejected(url)}")
        for service in target:
            service.retry = min(service.retry, MAX_APPRISE_RETRY)
        return target


def _rejected(url: str) -> str:
    """Why apprise refused ``url``, naming its scheme only (any other part may be a token)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if not scheme:
        return "not an apprise URL (expected scheme://...)"
    if scheme not in apprise.NotificationManager():  # type: ignore[no-untyped-call]
        return f"unknown apprise scheme {scheme}://"
    return f"apprise cannot use this {scheme}:// URL (a required part is missing or invalid)"


def _failure(channel: str, result: apprise.AppriseResult, urls: int) -> str:
    """An error text from apprise's result: counts and service names, never a URL."""
    if result.status == apprise.AppriseResultStatus.NOMATCH:
        return f"channel {channel}: no URL to deliver to"
    failed = [r for r in result if not r]
    names = ", ".join(dict.fromkeys(r.name for r in failed))
    plural = "URL" if urls == 1 else "URLs"
    how = "timed out" if result.status == apprise.AppriseResultStatus.TIMEOUT else "failed"
    counted = f"{len(failed) or urls} of {urls} {plural}"
    return f"channel {channel}: delivery {how} ({counted}{': ' + names if names else ''})"


def _describe(exc: Exception) -> str:
    """An exception as ``Class: text``, with credentials masked out of the text."""
    text = mask_url(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
