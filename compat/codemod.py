"""`python -m compat.codemod PATH...`: rewrite code off the removed TRL/peft/transformers APIs.

A thin shell over the pure engine `codemods.engine.transform`: file discovery (.gitignore-aware), a cheap byte-level
pre-filter (a file without any trigger word of a selected rule is never parsed), a process pool, diff / check /
atomic in-place write, a summary and an optional JSON report.

Exit codes: 0 nothing to do / done; 1 changes needed (--check / --diff); 2 usage error or a file that failed.
Imports only the standard library, packaging, libcst and codemods (never torch/transformers/peft/bitsandbytes).
"""

from __future__ import annotations

import argparse
import codecs
import difflib
import fnmatch
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from codemods import RULES, rules_by_id
from codemods.base import Rule, Settings
from codemods.engine import Result, active_rules, transform
from compat.versions import installed

PY_SUFFIXES = (".py", ".pyi")
NB_SUFFIX = ".ipynb"
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", ".env", "__pycache__", "build", "dist",
        "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs", "site-packages", ".ipynb_checkpoints",
    }
)  # fmt: skip
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-train.txt", "requirements.in")

MODE_WRITE, MODE_DIFF, MODE_CHECK = "write", "diff", "check"


# ---------------------------------------------------------------------------------------------- decoding
@dataclass
class Decoded:
    text: str
    encoding: str  # codec name; "utf-8-sig" when the file had a BOM (re-encoding restores it)


def decode(data: bytes) -> Decoded:
    """Decode like Python does (BOM, PEP 263 cookie, else utf-8). Raises UnicodeDecodeError/SyntaxError."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    if encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    return Decoded(data.decode(encoding), encoding)


# ---------------------------------------------------------------------------------------------- notebooks
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
    import ast

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


def transform_notebook(text: str, settings: Settings, filename: str) -> Result:
    """Rewrite the code cells of a notebook as ONE module (cells share a namespace: an import in one cell, its use
    in another), then split it back. Cell magics, shell escapes and cells that are not Python are left alone; the
    JSON is re-dumped only when a cell changed, in the file's own indentation."""
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
    result = transform(joined, settings, filename=filename)
    if result.error is not None or not result.changed:
        return Result(text, parsed=result.parsed, error=result.error)
    pieces = _CELL_SPLIT.split(result.source)
    # pieces: [text before the first mark, "0", cell 0, "1", cell 1, ...]
    if [int(x) for x in pieces[1::2]] != list(range(len(parts))):
        return Result(text, parsed=True, error="notebook cell boundaries were lost in the rewrite; not written")
    new_codes = pieces[2::2]
    new_codes[0] = pieces[0] + new_codes[0]
    changed = False
    for (i, code, originals, had_newline), new_code in zip(parts, new_codes):
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


# ---------------------------------------------------------------------------------------------- per file
@dataclass
class FileResult:
    path: str
    status: str  # prefiltered | skip-file | unchanged | changed | failed
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None
    diff: str | None = None
    findings: list[dict] = field(default_factory=list)


def atomic_write(path: Path, data: bytes, expected_mtime_ns: int | None = None) -> None:
    """Write `data` to `path` through a temp file in the same directory + os.replace (mode kept). The target is
    either the old or the new content, never partial; no temp file is left behind on failure."""
    real = Path(os.path.realpath(path))
    st = os.stat(real)
    if expected_mtime_ns is not None and st.st_mtime_ns != expected_mtime_ns:
        raise OSError(f"{path} was modified during the run; not written")
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".compat-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _unified_diff(old: str, new: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"a/{name.lstrip('/')}",
            f"b/{name.lstrip('/')}",
        )
    )


def process_source(data: bytes, settings: Settings, name: str, notebook: bool = False) -> tuple[FileResult, bytes]:
    """Transform one file's bytes. Returns the result and the new bytes (== data when unchanged)."""
    try:
        decoded = decode(data)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        return FileResult(name, "failed", error=f"cannot decode: {exc}"), data
    if notebook:
        result = transform_notebook(decoded.text, settings, name)
    else:
        result = transform(decoded.text, settings, filename=name)
    if result.error is not None:
        return FileResult(name, "failed", error=result.error), data
    if result.skipped_file:
        return FileResult(name, "skip-file"), data
    if not result.parsed:
        return FileResult(name, "prefiltered"), data
    if not result.changed or result.source == decoded.text:
        return FileResult(name, "unchanged"), data
    try:
        new_data = result.source.encode(decoded.encoding)
    except UnicodeEncodeError as exc:
        return FileResult(name, "failed", error=f"cannot re-encode as {decoded.encoding}: {exc}"), data
    findings = [{"rule": f.rule, "kind": f.kind, "line": f.line, "message": f.message} for f in result.findings]
    return FileResult(name, "changed", result.counts(), findings=findings), new_data


def process_file(path_str: str, settings: Settings, mode: str, display: str) -> FileResult:
    path = Path(path_str)
    try:
        st = os.stat(path)
        data = path.read_bytes()
    except OSError as exc:
        return FileResult(display, "failed", error=f"cannot read: {exc.strerror or exc}")
    result, new_data = process_source(data, settings, display, notebook=path.suffix == NB_SUFFIX)
    if result.status != "changed":
        return result
    if mode == MODE_DIFF:
        encoding = decode(data).encoding
        result.diff = _unified_diff(data.decode(encoding), new_data.decode(encoding), display)
    elif mode == MODE_WRITE:
        try:
            atomic_write(path, new_data, st.st_mtime_ns)
        except OSError as exc:
            return FileResult(display, "failed", error=f"cannot write: {exc}")
    return result


def _init_worker() -> None:
    """Ctrl-C goes to the parent only; a terminated worker unwinds (SystemExit) so that a write in progress
    removes its temp file instead of leaving it behind."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _worker(job: tuple[str, str, Settings, str]) -> FileResult:
    path, display, settings, mode = job
    try:
        return process_file(path, settings, mode, display)
    except Exception as exc:  # never let one file stop the run
        return FileResult(display, "failed", error=f"internal error: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------- discovery
def _git_files(directory: Path) -> list[Path] | None:
    """Files git would show in `directory` (tracked + untracked, not ignored); None when not in a work tree or
    when the directory itself is ignored (then the caller walks it: the user named it explicitly)."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", "."],
            cwd=directory, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    names = [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    if not names:
        ignored = subprocess.run(["git", "check-ignore", "-q", "."], cwd=directory, capture_output=True)
        if ignored.returncode == 0:
            return None
    return [directory / n for n in names]


def _walk(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(
            d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
            and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
        )  # fmt: skip
        for name in sorted(files):
            yield Path(root, name)


def _excluded(path: Path, excludes: Sequence[str]) -> bool:
    if not excludes:
        return False
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        rel = path.as_posix()
    parts = rel.split("/")
    candidates = [rel, path.as_posix(), path.name] + ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    candidates += parts[:-1]
    return any(fnmatch.fnmatch(c, pattern) for pattern in excludes for c in candidates)


def discover(paths: Sequence[str], excludes: Sequence[str] = ()) -> tuple[list[Path], list[str]]:
    """Python and notebook files under `paths`; returns (files, errors for paths that do not exist)."""
    files: list[Path] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen and not _excluded(p, excludes):
            seen.add(key)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_file():
            add(p)
        elif p.is_dir():
            listed = _git_files(p)
            candidates: Iterable[Path]
            if listed is None:
                candidates = _walk(p)
            else:
                candidates = (
                    f for f in sorted(listed)
                    if not SKIP_DIRS.intersection(f.relative_to(p).parts[:-1]) and f.is_file()
                )  # fmt: skip
            for f in candidates:
                if f.suffix in PY_SUFFIXES or f.suffix == NB_SUFFIX:
                    add(f)
        else:
            errors.append(f"{raw}: no such file or directory")
    return files, errors


# ---------------------------------------------------------------------------------------------- targets
_REQ_LINE = re.compile(r"""["']?\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*((?:[<>=!~]=?|===)[^"'#;\n]*)""")


def _minimum(spec_text: str) -> Version | None:
    try:
        req = Requirement("x" + spec_text.strip())
    except InvalidRequirement:
        return None
    lows = []
    for spec in req.specifier:
        if spec.operator in (">=", "==", "~=", "===", ">"):
            try:
                lows.append(Version(spec.version.replace(".*", "")))
            except InvalidVersion:
                pass
    return max(lows) if lows else None


def declared_minimums(text: str, packages: Iterable[str]) -> dict[str, Version]:
    wanted = {p.lower().replace("_", "-") for p in packages}
    found: dict[str, Version] = {}
    for m in _REQ_LINE.finditer(text):
        name = m.group(1).lower().replace("_", "-")
        if name in wanted:
            low = _minimum(m.group(3))
            if low is not None and (name not in found or low > found[name]):
                found[name] = low
    return found


def find_declared(start: Path, packages: Sequence[str]) -> tuple[dict[str, Version], Path | None]:
    """The minimum versions declared in the nearest pyproject.toml / requirements file above `start`."""
    directory = start if start.is_dir() else start.parent
    directory = directory.resolve()
    for d in (directory, *directory.parents):
        candidates = [d / "pyproject.toml", *(d / n for n in REQUIREMENT_FILES)]
        existing = [c for c in candidates if c.is_file()]
        if existing:
            found: dict[str, Version] = {}
            source = None
            for c in existing:
                try:
                    text = c.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if c.name == "pyproject.toml":
                    text = _pyproject_dependency_text(text)
                for k, v in declared_minimums(text, packages).items():
                    if k not in found:
                        found[k] = v
                        source = source or c
            return found, (source or existing[0])
    return {}, None


def _pyproject_dependency_text(text: str) -> str:
    """The parts of a pyproject.toml that declare dependencies (project deps, optional deps, poetry deps)."""
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - 3.10
        return text
    try:
        data = tomllib.loads(text)
    except ValueError:
        return text
    parts: list[str] = []
    project = data.get("project", {})
    parts += [f'"{d}"' for d in project.get("dependencies", []) if isinstance(d, str)]
    for deps in project.get("optional-dependencies", {}).values():
        parts += [f'"{d}"' for d in deps if isinstance(d, str)]
    for deps in data.get("dependency-groups", {}).values():
        parts += [f'"{d}"' for d in deps if isinstance(d, str)]
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {})
    for name, value in poetry.items():
        spec = value.get("version") if isinstance(value, dict) else value
        if isinstance(spec, str) and spec and spec[0].isdigit():
            spec = "==" + spec
        if isinstance(spec, str) and spec.startswith("^"):
            spec = ">=" + spec[1:]
        if isinstance(spec, str):
            parts.append(f'"{name}{spec}"')
    return "\n".join(parts)


def resolve_targets(
    explicit: dict[str, str], start: Path, rules: Sequence[type[Rule]]
) -> tuple[dict[str, str], dict[str, str]]:
    """Returns (targets, where each came from). Explicit --target, else the nearest declared minimum, else the
    installed version, else none (= newest)."""
    packages = sorted({p for r in rules for p in r.target} | set(explicit))
    targets: dict[str, str] = {}
    sources: dict[str, str] = {}
    declared, declared_in = find_declared(start, [p for p in packages if p not in explicit])
    for package in packages:
        if package in explicit:
            targets[package], sources[package] = explicit[package], "--target"
        elif package in declared:
            targets[package], sources[package] = str(declared[package]), f"minimum in {declared_in}"
        elif (have := installed(package)) is not None:
            targets[package], sources[package] = have.base_version, "installed"
        else:
            sources[package] = "newest (not declared, not installed)"
    return targets, sources


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m compat.codemod",
        description="Rewrite code off the removed TRL helpers and renamed transformers/peft APIs.",
        epilog="Exit codes: 0 nothing to do / done; 1 changes needed (--check/--diff); 2 usage error or a failed file. "
        "A line with '# compat: skip' (a file with '# compat: skip-file') is left alone.",
    )
    p.add_argument("paths", nargs="*", help="files or directories (recursive); '-' reads stdin, writes stdout")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--diff", action="store_true", help="print a unified diff, write nothing")
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    p.add_argument("--report", metavar="FILE.json", help="write the summary and per-file results as JSON")
    p.add_argument("--list-rules", action="store_true", help="list the rules and exit")
    p.add_argument("--select", action="append", default=[], metavar="ID", help="run only these rules (repeatable)")
    p.add_argument("--skip", action="append", default=[], metavar="ID", help="do not run these rules (repeatable)")
    p.add_argument(
        "--target", action="append", default=[], metavar="PKG=VERSION",
        help="oldest version the rewritten code must run on, e.g. transformers=4.56 (repeatable); default: the "
        "minimum declared in the nearest pyproject.toml/requirements file, else the installed one, else newest",
    )  # fmt: skip
    p.add_argument("--strict", action="store_true", help="also flag ambiguous cases with TODO comments")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip matching paths (repeatable)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: CPU count; 1 = in-process)")
    p.add_argument("--quiet", "-q", action="store_true", help="only print failures (and the diff with --diff)")
    return p


def _split_ids(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _list_rules(settings: Settings, out) -> None:
    width = max((len(r.id) for r in RULES), default=10)
    for rule in RULES:
        needs = ", ".join(f"{k}>={v}" for k, v in rule.target.items()) or "any"
        state = "" if rule.gate_met(settings) else "  (off for the current targets)"
        print(f"{rule.id:<{width}}  needs {needs:<32} {rule.summary}{state}", file=out)


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done, self.last = total, enabled, 0, 0.0

    def step(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done == self.total:
            self.last = now
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()
            self.last = 0.0  # redraw on the next step


def _trigger_bytes(rules: Sequence[type[Rule]]) -> tuple[bytes, ...] | None:
    """Byte triggers of all rules; None when some rule has none (then every file is a candidate)."""
    out: list[bytes] = []
    for rule in rules:
        if not rule.triggers:
            return None
        out += [t.encode("utf-8") for t in rule.triggers]
    return tuple(dict.fromkeys(out))


def _display(path: Path) -> str:
    if not path.is_absolute():
        return os.path.normpath(path)
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def run_stdin(settings: Settings, mode: str, quiet: bool) -> int:
    data = sys.stdin.buffer.read()
    result, new_data = process_source(data, settings, "<stdin>")
    if result.status == "failed":
        print(f"compat.codemod: <stdin>: {result.error}", file=sys.stderr)
        if mode == MODE_WRITE:
            sys.stdout.buffer.write(data)
        return 2
    changed = result.status == "changed"
    if mode == MODE_WRITE:
        sys.stdout.buffer.write(new_data)
    elif mode == MODE_DIFF and changed:
        enc = decode(data).encoding
        sys.stdout.write(_unified_diff(data.decode(enc), new_data.decode(enc), "<stdin>"))
    if not quiet:
        counts = ", ".join(f"{r}: {c['rewrites']} rewrites, {c['todos']} TODOs" for r, c in result.counts.items())
        print(f"compat.codemod: <stdin>: {result.status}{' (' + counts + ')' if counts else ''}", file=sys.stderr)
    return 1 if changed and mode != MODE_WRITE else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    known = rules_by_id()
    select = _split_ids(args.select)
    skip = _split_ids(args.skip)
    unknown = [i for i in select + skip if i not in known]
    if unknown:
        parser.error(f"unknown rule id(s): {', '.join(unknown)} (see --list-rules)")
    explicit: dict[str, str] = {}
    for item in args.target:
        package, sep, version = item.partition("=")
        try:
            Version(version)
        except InvalidVersion:
            sep = ""
        if not sep or not package:
            parser.error(f"--target expects PKG=VERSION, got {item!r}")
        explicit[package.strip().lower()] = version.strip()
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")

    mode = MODE_DIFF if args.diff else MODE_CHECK if args.check else MODE_WRITE
    selected = [r for r in RULES if (not select or r.id in select) and r.id not in skip]
    stdin_only = args.paths == ["-"]
    start = Path.cwd() if stdin_only or not args.paths else Path(args.paths[0])
    targets, sources = resolve_targets(explicit, start if start.exists() else Path.cwd(), selected)
    settings = Settings(
        targets=targets,
        strict=args.strict,
        select=frozenset(select) if select else None,
        skip=frozenset(skip),
    )
    if args.list_rules:
        _list_rules(settings, sys.stdout)
        return 0
    if not args.paths:
        parser.error("no paths given (use '-' for stdin)")
    if "-" in args.paths and not stdin_only:
        parser.error("'-' (stdin) cannot be combined with other paths")

    target_line = ", ".join(
        f"{p}={targets[p]} ({sources[p]})" if p in targets else f"{p}: {sources[p]}" for p in sorted(sources)
    )
    rules = active_rules(settings)
    off = [r.id for r in selected if r not in rules]
    if not args.quiet:
        print(f"compat.codemod: targets: {target_line or 'none'}", file=sys.stderr)
        if off:
            print(f"compat.codemod: off for these targets: {', '.join(off)}", file=sys.stderr)
    if stdin_only:
        return run_stdin(settings, mode, args.quiet)

    t0 = time.perf_counter()
    files, errors = discover(args.paths, args.exclude)
    for e in errors:
        print(f"compat.codemod: {e}", file=sys.stderr)
    results = run_files(files, settings, mode, args.jobs, rules, quiet=args.quiet)
    elapsed = time.perf_counter() - t0

    summary = summarize(results)
    if not args.quiet or summary["failed"]:
        _print_summary(summary, results, mode, elapsed, quiet=args.quiet)
    if args.report:
        report = {
            "mode": mode,
            "targets": {p: {"version": targets.get(p), "source": sources[p]} for p in sorted(sources)},
            "rules": [r.id for r in rules],
            "summary": summary,
            "files": [
                {k: v for k, v in vars(r).items() if k != "diff" and (v or k in ("path", "status"))} for r in results
            ],
            "seconds": round(elapsed, 3),
        }
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if errors or summary["failed"]:
        return 2
    if mode != MODE_WRITE and summary["changed"]:
        return 1
    return 0


def run_files(
    files: Sequence[Path], settings: Settings, mode: str, jobs: int | None, rules: Sequence[type[Rule]], quiet=False
) -> list[FileResult]:
    """Pre-filter on bytes in this process, then transform the candidates (in a pool when jobs > 1)."""
    triggers = _trigger_bytes(rules)
    progress = _Progress(len(files), enabled=not quiet and sys.stderr.isatty() and len(files) >= 50)
    results: dict[int, FileResult] = {}
    candidates: list[int] = []
    for i, path in enumerate(files):
        display = _display(path)
        if not rules:
            results[i] = FileResult(display, "prefiltered")
            progress.step()
            continue
        if triggers is not None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                results[i] = FileResult(display, "failed", error=f"cannot read: {exc.strerror or exc}")
                progress.step()
                continue
            if not any(t in data for t in triggers):
                results[i] = FileResult(display, "prefiltered")
                progress.step()
                continue
        candidates.append(i)
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    work = [(str(files[i]), _display(files[i]), settings, mode) for i in candidates]
    if jobs > 1 and len(work) > 1:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ctx.Pool(min(jobs, len(work)), initializer=_init_worker) as pool:
            chunk = max(1, min(16, len(work) // (jobs * 4)))
            for i, res in zip(candidates, pool.imap(_worker, work, chunksize=chunk)):
                results[i] = res
                _emit(res, mode, quiet, progress)
                progress.step()
            # Let the workers exit on their own: Pool.__exit__ would terminate() them, and a worker killed while it
            # holds the result queue's lock leaves the parent waiting on it forever.
            pool.close()
            pool.join()
    else:
        for i, job in zip(candidates, work):
            res = _worker(job)
            results[i] = res
            _emit(res, mode, quiet, progress)
            progress.step()
    progress.close()
    return [results[i] for i in range(len(files))]


def _emit(result: FileResult, mode: str, quiet: bool, progress: _Progress | None = None) -> None:
    if progress is not None and (result.diff or result.status == "changed"):
        progress.close()  # clear the bar before printing a line
    if result.diff:
        sys.stdout.write(result.diff)
        sys.stdout.flush()
    elif result.status == "changed" and not quiet:
        verb = "would rewrite" if mode == MODE_CHECK else "rewrote"
        print(f"{verb} {result.path}", file=sys.stderr)


def summarize(results: Sequence[FileResult]) -> dict:
    summary = {"scanned": len(results), "prefiltered": 0, "skip-file": 0, "changed": 0, "unchanged": 0, "failed": 0}
    per_rule: dict[str, dict[str, int]] = {}
    for r in results:
        summary[r.status] += 1
        for rule, counts in r.counts.items():
            entry = per_rule.setdefault(rule, {"rewrites": 0, "todos": 0, "files": 0})
            entry["rewrites"] += counts["rewrites"]
            entry["todos"] += counts["todos"]
            entry["files"] += 1
    summary["rules"] = per_rule
    return summary


def _print_summary(summary: dict, results: Sequence[FileResult], mode: str, elapsed: float, quiet: bool) -> None:
    err = sys.stderr
    changed = {MODE_WRITE: "changed", MODE_DIFF: "would change", MODE_CHECK: "would change"}[mode]
    if not quiet:
        print(
            f"compat.codemod: {summary['scanned']} files scanned in {elapsed:.2f}s: "
            f"{summary['prefiltered']} skipped by the pre-filter, {summary['skip-file']} skip-file, "
            f"{summary['changed']} {changed}, {summary['unchanged']} unchanged, {summary['failed']} failed",
            file=err,
        )
        for rule, c in sorted(summary["rules"].items()):
            print(f"  {rule}: {c['rewrites']} rewrites, {c['todos']} TODO comments in {c['files']} files", file=err)
    for r in results:
        if r.status == "failed":
            print(f"  failed: {r.path}: {r.error}", file=err)


if __name__ == "__main__":
    sys.exit(main())
