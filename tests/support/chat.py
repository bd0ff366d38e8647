"""What one chat message of `monitor` told, as apprise ``json://`` delivers it: notices by kind.

A message lists at most ten notices (``monitor.actions.messages.MAX_LISTED``) and counts the
rest ("… and 10 more"), so counting the listed items misses the tail of a large digest: a
member that closes a drift episode's windows and its calm ones in one round sends its ten
FIRING and ten RESOLVED notices in one message. The title's tag names the kinds (with a count
each when they are mixed) and the body's header counts the notices, listed or not.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_TAG = re.compile(r"\[([^\]]+)\]")
_LABEL = re.compile(r"[A-Z]+(?: [A-Z]+)*")  # FIRING, STILL FIRING, TRIGGER FAILED, ...
_PER_LABEL = re.compile(r"([A-Z]+(?: [A-Z]+)*) \u00d7(\d+)")
_COUNT = re.compile(r"\*\* · (\d+) alerts?\b")


def notices_by_kind(message: dict[str, Any]) -> Counter[str]:
    """Notices per label ("FIRING", "RESOLVED", ...) in one message (its JSON body)."""
    tag = _TAG.match(message["title"])
    count = _COUNT.search(message["message"])
    label = _LABEL.match(tag[1]) if tag else None
    if tag is None or count is None or label is None:
        raise AssertionError(f"not an alert message of monitor: {message}")
    per_label = _PER_LABEL.findall(tag[1])
    if per_label:
        return Counter({name: int(n) for name, n in per_label})
    return Counter({label[0]: int(count[1])})
