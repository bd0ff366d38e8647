"""config/monitor.yaml documents every option of the settings model, with its default.

The file is what a user copies (the README's first command after the demo), so it must load
as it is, give exactly the defaults, and name every field of every section (walked from the
pydantic models in monitor/settings.py) with a comment. The list sections (models, channels,
triggers, rules) default to empty, so their fields are shown in a commented-out example, which
must be a valid config once uncommented.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from monitor.settings import Settings, load_settings

CONFIG = Path(__file__).parents[2] / "config" / "monitor.yaml"
EXAMPLE_ENV = {
    "SLACK_WEBHOOK_URL": "slack://T000/B000/XXXX",
    "SMTP_USER": "alerts",
    "SMTP_PASSWORD": "pw",
    "RETRAIN_URL": "https://ci.example.com/retrain",
    "RETRAIN_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def uncommented(text: str) -> str:
    """The file with its commented-out examples restored.

    Example lines are ``#`` followed by at least two spaces (prose comments at the top level
    have one); an empty list or mapping they follow (``models: []``) opens their block.
    """
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"\w+: (\[\]|\{\})", line) and following.startswith("#  "):
            line = line.split(":", 1)[0] + ":"
        elif line.startswith("#  "):
            line = line[1:]
        out.append(line)
    return "\n".join(out) + "\n"


def sections(text: str) -> dict[str, list[str]]:
    """Top-level key → the lines of its block (the key line first)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        top = re.match(r"^([a-z_]+):", line)
        if top:
            current = found.setdefault(top[1], [])
        if current is not None:
            current.append(line)
    return found


def _is_comment(line: str) -> bool:
    return bool(re.match(r"^\s*(- )?#", line))


def _key_of(line: str) -> str | None:
    match = re.match(r"^\s*(?:- )?([A-Za-z_]\w*):(?:\s|$)", line)
    return match[1] if match else None


def documented(block: list[str], key: str) -> bool:
    """The first line with ``key`` has a trailing comment, sits right under a comment, or
    follows other keys under a comment that names it."""
    for i, line in enumerate(block):
        if _key_of(line) != key:
            continue
        if " # " in line:
            return True
        j = i - 1
        while j > 0 and _key_of(block[j]) and " # " not in block[j]:
            j -= 1
        comment = []
        while j >= 0 and _is_comment(block[j]):
            comment.append(block[j])
            j -= 1
        if not comment:
            return False
        return (
            _key_of(block[i - 1]) is None or re.search(rf"\b{key}\b", " ".join(comment)) is not None
        )
    return False


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (through Optional, list, dict, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list, dict) or hasattr(
        annotation, "__metadata__"
    ):
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def fields(model: type[BaseModel]) -> list[tuple[str, type[BaseModel] | None]]:
    """(YAML name, nested model or None) of each field of ``model``."""
    return [(f.alias or name, _model_of(f.annotation)) for name, f in model.model_fields.items()]


def test_config_file_loads_and_gives_exactly_the_defaults() -> None:
    """The file as shipped loads (no variable needs setting) and changes no default."""
    assert load_settings(CONFIG, env={}) == Settings()


def test_commented_examples_are_a_valid_config(tmp_path: Path) -> None:
    """Uncommented, the models, channels, triggers and rules examples validate."""
    file = tmp_path / "monitor.yaml"
    file.write_text(uncommented(CONFIG.read_text(encoding="utf-8")), encoding="utf-8")
    settings = load_settings(file, env=EXAMPLE_ENV)
    assert settings.models and settings.channels and settings.triggers and settings.rules


@pytest.mark.parametrize("section", list(Settings.model_fields))
def test_every_option_of_the_section_is_documented(section: str) -> None:
    """Each field of the section (and of its items) appears with a comment; nested fields
    (field paths, reference source) at least by name."""
    text = uncommented(CONFIG.read_text(encoding="utf-8"))
    block = sections(text).get(section)
    assert block, f"section {section} missing from {CONFIG.name}"
    model = _model_of(Settings.model_fields[section].annotation)
    assert model is not None
    missing = [key for key, _ in fields(model) if not documented(block, key)]
    assert not missing, f"{section}: undocumented {missing}"
    body = "\n".join(block)
    nested = [(key, sub) for key, sub in fields(model) if sub is not None]
    for key, sub in nested:
        absent = [name for name, _ in fields(sub) if not re.search(rf"\b{name}:", body)]
        assert not absent, f"{section}.{key}: {absent} not named"


def test_documented_needs_a_comment_that_names_a_key_further_down() -> None:
    """The documentation check: a comment covers the key under it, and later keys it names."""
    block = ["x:", "  # Base and cap of the backoff.", "  base: 1", "  cap: 2", "  other: 3"]
    assert documented(block, "base") and documented(block, "cap")
    assert not documented(block, "other") and not documented(block, "absent")
    assert documented(["x:", "  key: 1  # trailing"], "key")
    assert uncommented("rules: []\n#  - name: a\n# prose\n") == "rules:\n  - name: a\n# prose\n"
