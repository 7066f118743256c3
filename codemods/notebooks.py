"""Notebooks: the code cells of a `.ipynb` rewritten as ONE module (cells share a namespace: an import in one
cell, its use in another), then split back. A pure transform beside the engine: text in, text out.

Cell magics, shell escapes and cells that are not Python are left alone; the JSON is re-dumped only when a cell
changed, in the file's own indentation.
"""

from __future__ import annotations

import ast
import bisect
import json
import re
from dataclasses import replace

from codemods.engine import Result, transform
from codemods.rule import Finding, Settings

__all__ = ["transform_notebook"]

_MAGIC = re.compile(r"^([ \t]*)(?:[%!]|[\w.]+[ \t]*=[ \t]*[%!]|\S.*\?[ \t]*$)")
_PLACEHOLDER = re.compile(r"^[ \t]*pass  # compat-magic-(\d+)$", re.MULTILINE)


def _mask_magics(code: str) -> tuple[str, list[str]]:
    originals: list[str] = []
    out = []
    for line in code.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _MAGIC.match(body)
        if m and not body.lstrip().startswith("#"):
            out.append(f"{m.group(1)}pass  # compat-magic-{len(originals)}{line[len(body) :]}")
            originals.append(body)
        else:
            out.append(line)
    return "".join(out), originals


def _unmask(code: str, originals: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: originals[int(m.group(1))], code)


_CELL_MARK = "# <compat-cell {}>\n"
_CELL_SPLIT = re.compile(r"^# <compat-cell (\d+)>\r?\n", re.MULTILINE)


def _cell_code(code: str) -> tuple[str, list[str]] | None:
    """The cell as plain Python (IPython magics / shell escapes masked), or None when it is not Python."""
    try:
        ast.parse(code)
        return code, []
    except (SyntaxError, ValueError):
        pass
    masked, originals = _mask_magics(code)
    if not originals:
        return None
    try:
        ast.parse(masked)
    except (SyntaxError, ValueError):
        return None
    return masked, originals


def _in_cells(findings: list[Finding], joined: str, cell_indexes: list[int]) -> list[Finding]:
    """Positions in the joined module -> (cell number, 1-based in the notebook; line within that cell)."""
    starts = [m.start() for m in _CELL_SPLIT.finditer(joined)]
    first_lines = [joined.count("\n", 0, start) + 2 for start in starts]  # the line after each mark
    out = []
    for f in findings:
        k = bisect.bisect_right(first_lines, f.line) - 1
        if k < 0:
            out.append(f)
            continue
        out.append(replace(f, line=f.line - first_lines[k] + 1, cell=cell_indexes[k] + 1))
    return out


def transform_notebook(text: str, settings: Settings, filename: str, project=None) -> Result:
    """Rewrite the code cells of notebook JSON `text` (see the module docstring)."""
    try:
        nb = json.loads(text)
    except ValueError as exc:
        return Result(text, parsed=True, error=f"invalid notebook JSON: {exc}")
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return Result(text, parsed=True, error="invalid notebook: no cells list")
    parts: list[tuple[int, str, list[str], bool]] = []  # cell index, code, masked lines, had a final newline
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        code = "".join(source) if isinstance(source, list) else str(source)
        if code.lstrip().startswith("%%") or _CELL_SPLIT.search(code):
            continue  # a cell magic: not Python
        prepared = _cell_code(code)
        if prepared is None:
            continue
        parts.append((i, prepared[0], prepared[1], code.endswith("\n")))
    if not parts:
        return Result(text)
    joined = "".join(
        _CELL_MARK.format(k) + code + ("" if code.endswith("\n") else "\n") for k, (_, code, _, _) in enumerate(parts)
    )
    result = transform(joined, settings, filename=filename, project=project)
    result.findings = _in_cells(result.findings, joined, [i for i, _, _, _ in parts])
    if result.error is not None or not result.changed:
        return Result(
            text,
            result.diagnostics if result.error is None else [],
            parsed=result.parsed,
            error=result.error,
        )
    pieces = _CELL_SPLIT.split(result.source)
    # pieces: [text before the first mark, "0", cell 0, "1", cell 1, ...]
    if [int(x) for x in pieces[1::2]] != list(range(len(parts))):
        return Result(
            text,
            parsed=True,
            error="notebook cell boundaries were lost in the rewrite; not written",
        )
    new_codes = pieces[2::2]
    new_codes[0] = pieces[0] + new_codes[0]
    changed = False
    for (i, _code, originals, had_newline), new_code in zip(parts, new_codes):
        if originals:
            new_code = _unmask(new_code, originals)
        if not had_newline and new_code.endswith("\n"):
            new_code = new_code[:-1]
        old_source = cells[i].get("source", "")
        old_code = "".join(old_source) if isinstance(old_source, list) else str(old_source)
        if new_code == old_code:
            continue
        changed = True
        cells[i]["source"] = new_code.splitlines(keepends=True) if isinstance(old_source, list) else new_code
    if not changed:
        return Result(text, parsed=True)
    m = re.match(r"\{\s*?\n([ \t]+)\"", text)
    indent = len(m.group(1)) if m else 1
    ensure_ascii = text.isascii() and "\\u" in text
    out = json.dumps(nb, indent=indent, ensure_ascii=ensure_ascii)
    if "\r\n" in text:
        out = out.replace("\n", "\r\n")
    if text.endswith("\n"):
        out += "\r\n" if text.endswith("\r\n") else "\n"
    return Result(out, result.findings, parsed=True)
