"""Render the gate table of MIGRATION.md from `compat.versions.GATES` (the code is the source of truth).

    python -m compat.migration_table            print the table (Markdown)
    python -m compat.migration_table --write    rewrite the block between the markers of MIGRATION.md in place
    python -m compat.migration_table --check    exit 1 (and say so) when MIGRATION.md and the code disagree

Imports nothing but `compat.versions` (no torch, transformers or peft).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from compat import versions

START = "<!-- gate-table:start -->"
END = "<!-- gate-table:end -->"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "MIGRATION.md"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _link(url: str) -> str:
    label = url.rstrip("/").rsplit("/", 1)[-1]
    if "/issues/" in url or "/pull/" in url:
        repo = url.split("github.com/", 1)[-1].split("/")[1]
        label = f"{repo} #{label}"
    elif "/releases/tag/" in url:
        repo = url.split("github.com/", 1)[-1].split("/")[1]
        label = f"{repo} {label}"
    return f"[{_cell(label)}]({url})"


def gate_table_markdown(gates=None) -> str:
    """The Markdown table of every gate, in table order, without the markers."""
    gates = versions.GATES if gates is None else gates
    lines = [
        "| gate | new behaviour since | before | from then on | upstream | delete when |",
        "|---|---|---|---|---|---|",
    ]
    for gate in gates:
        since = ", ".join(f"{pkg} {ver}" for pkg, ver in gate.since)
        lines.append(
            f"| `{gate.name}` | {_cell(since)} | {_cell(gate.old)} | {_cell(gate.new)} | {_link(gate.link)} "
            f"| {_cell(gate.delete_when)} |"
        )
    return "\n".join(lines)


def gate_table_block(gates=None) -> str:
    """The whole generated block, markers included."""
    return (
        f"{START}\n"
        "<!-- generated from compat/versions.py by `python -m compat.migration_table --write`; do not edit -->\n"
        f"{gate_table_markdown(gates)}\n"
        f"{END}"
    )


def _split(text: str) -> tuple[str, str, str]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"MIGRATION.md must contain {START} followed by {END}")
    return text[:start], text[start : end + len(END)], text[end + len(END) :]


def current_block(text: str) -> str:
    return _split(text)[1]


def updated(text: str, gates=None) -> str:
    """`text` with the block between the markers replaced by the generated table (everything else byte-identical)."""
    before, _, after = _split(text)
    return before + gate_table_block(gates) + after


def write(path: Path = DEFAULT_PATH) -> bool:
    """Rewrite the block in `path` atomically; returns True when the file changed."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    new = updated(text)
    if new == text:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(new.encode("utf-8"))
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.migration_table", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the gate table block of MIGRATION.md")
    group.add_argument("--check", action="store_true", help="exit 1 when MIGRATION.md is out of date")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="the file (default: MIGRATION.md)")
    ns = parser.parse_args(argv)
    if ns.write:
        changed = write(ns.path)
        print(f"{ns.path}: {'gate table updated' if changed else 'already up to date'}")
        return 0
    if ns.check:
        text = ns.path.read_text(encoding="utf-8")
        if updated(text) != text:
            print(
                f"{ns.path}: the gate table differs from compat/versions.py; run: python -m compat.migration_table --write",
                file=sys.stderr,
            )
            return 1
        print(f"{ns.path}: gate table up to date ({len(versions.GATES)} gates)")
        return 0
    print(gate_table_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
