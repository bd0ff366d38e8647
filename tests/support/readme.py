"""README.md as data: its fenced blocks, what each one is, and how a test exercises it.

Every fenced block of the README carries an info string that says how it is kept true:

- ``bash``: commands, run for real in document order by ``tests/e2e/test_readme_commands.py``
  (one shell session per README, as a reader following it would type them), except the lines
  in `EXEMPT` (cannot run here, or are the test run itself) and `ELSEWHERE` (too long for this
  test, run by the named test instead);
- ``text``: either an output sample, directly after the ``bash`` block whose output it shows
  (compared line by line, ``...`` matching anything), or the architecture picture (`DIAGRAM`);
- ``yaml``: config, loaded by the real settings loader; ``json``: events, parsed by the real
  event parser (with the ``yaml`` block that follows, when there is one: the field mapping);
  ``python``: executed; ``csv``: the first rows of a reference file that is built for real.

`check_plan` fails on a block that fits none of these, so a new block cannot go untested.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

KINDS = ("bash", "text", "yaml", "json", "python", "csv")

# Command lines no test here runs, and why. Keep this list tiny.
EXEMPT = {
    # No container engine on the test machines: docker-compose.yml is validated against the
    # Compose Specification and its config by `monitor check-config` instead
    # (tests/integration/test_deployment_files.py).
    "docker compose ": "no container engine; compose file schema-checked instead",
    # The command that runs this very test.
    "scripts/test": "runs the test suite itself",
}
# Command lines run by another test (too long to run here), and which one.
ELSEWHERE = {
    "scripts/demo": "tests/e2e/test_demo_keep_running.py",
}
DIAGRAM = "monitor"  # the section whose text block is the architecture picture, not output


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: where it is, its info string and its text."""

    index: int
    line: int  # 1-based line of the opening fence
    section: str  # the enclosing "## " heading ("monitor" before the first one)
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section}, {self.kind or 'no info string'})"


def blocks(path: Path = README) -> list[Block]:
    """The fenced blocks of ``path``, in document order."""
    found: list[Block] = []
    section = "monitor"
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        assert end < len(lines), f"README.md:{i + 1}: unclosed code fence"
        text = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(len(found), i + 1, section, fence[1], text))
        i = end + 1
    return found


def sections(path: Path = README) -> list[str]:
    """The "## " headings in document order."""
    text = path.read_text(encoding="utf-8")
    return [m[1].strip() for m in re.finditer(r"^## (.+)$", text, flags=re.MULTILINE)]


def lines(block: Block) -> Iterator[tuple[str, bool]]:
    """Each line of a bash block, and whether it starts a command (not a comment, a blank
    line or a heredoc's body)."""
    terminator: str | None = None
    for line in block.text.splitlines():
        if terminator is not None:
            if line.strip() == terminator:
                terminator = None
            yield line, False
            continue
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            terminator = heredoc[1]
        yield line, bool(line.strip()) and not line.lstrip().startswith("#")


def command_lines(block: Block) -> list[str]:
    """The lines of a bash block that start a command."""
    return [line for line, is_command in lines(block) if is_command]


def exemption(line: str) -> str | None:
    """Why ``line`` is not run by the README test (None: it is run)."""
    for prefix, why in EXEMPT.items():
        if line.startswith(prefix):
            return why
    for prefix, test in ELSEWHERE.items():
        if line.startswith(prefix):
            return f"run by {test}"
    return None


def is_output_sample(block: Block, previous: Block | None) -> bool:
    """A ``text`` block right after a ``bash`` block of the same section shows its output."""
    return (
        block.kind == "text"
        and previous is not None
        and previous.kind == "bash"
        and previous.section == block.section
    )


def is_diagram(block: Block) -> bool:
    return block.kind == "text" and block.section == DIAGRAM


def mapping_for(block: Block, all_blocks: list[Block]) -> Block | None:
    """The ``yaml`` block right after a ``json`` event: the field mapping it is read with."""
    following = all_blocks[block.index + 1] if block.index + 1 < len(all_blocks) else None
    if following is not None and following.kind == "yaml" and following.section == block.section:
        return following
    return None


def file_name(block: Block) -> str | None:
    """The file a yaml block is, named by its first line: ``# production.yaml``."""
    first = block.text.splitlines()[0] if block.text.strip() else ""
    match = re.fullmatch(r"#\s*([\w.-]+\.ya?ml)\s*", first)
    return match[1] if match else None


def check_plan(all_blocks: list[Block]) -> list[str]:
    """Every block that no test would exercise, described (an empty list: all covered)."""
    problems = []
    for block in all_blocks:
        previous = all_blocks[block.index - 1] if block.index else None
        if block.kind not in KINDS:
            problems.append(f"{block.where}: info string must be one of {', '.join(KINDS)}")
        elif block.kind == "text" and not (is_output_sample(block, previous) or is_diagram(block)):
            problems.append(f"{block.where}: a text block must follow the bash block it shows")
        elif block.kind == "bash" and not command_lines(block):
            problems.append(f"{block.where}: a bash block without a command")
    return problems


def sample_matches(sample: str, output: str) -> str | None:
    """None when every line of ``sample`` appears in ``output`` in order, else what is missing.

    Lines are compared with runs of spaces collapsed; ``...`` in a sample line matches any
    text, and a sample line of only ``...`` any number of output lines (samples are the
    reader's excerpt of the output, in order).
    """
    lines = [" ".join(line.split()) for line in output.splitlines()]
    position = 0
    for wanted in sample.splitlines():
        wanted = " ".join(wanted.split())
        if not wanted or wanted == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.split("...")))
        for i in range(position, len(lines)):
            if pattern.fullmatch(lines[i]):
                position = i + 1
                break
        else:
            return f"sample line {wanted!r} not found in order in:\n{output[-4000:]}"
    return None
