"""`python -m codemods PATH...` (also `python -m compat.codemod`, `compat-codemod`): the command line.

A thin shell over the pure engine `codemods.engine.transform`: file discovery (codemods.discovery), targets
(codemods.targets), a cheap byte-level pre-filter (a file without any trigger word of a selected rule is never
parsed), a process pool, diff / check / atomic in-place write, diagnostics for every site left
(`path:line:col: rule message`), a summary and an optional JSON report.

Exit codes: 0 nothing to do / done; 1 changes needed (--check / --diff); 3 nothing to rewrite (or rewritten) but
sites need review (diagnostics, TODO comments); 2 usage error or a file that failed. Priority 2 > 1 > 3 > 0.
Imports only the standard library, packaging, libcst and codemods (never torch/transformers/peft/bitsandbytes).
"""

from __future__ import annotations

import argparse
import codecs
import difflib
import io
import json
import os
import stat
import sys
import tempfile
import time
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from codemods import RULES, rules_by_id
from codemods.discovery import NB_SUFFIX, YAML_SUFFIXES, discover
from codemods.engine import active_rules, transform
from codemods.notebooks import transform_notebook
from codemods.project import Project
from codemods.recipes import transform_recipe
from codemods.rule import Rule, Settings
from codemods.targets import resolve_targets

MODE_WRITE, MODE_DIFF, MODE_CHECK = "write", "diff", "check"
EXIT_OK, EXIT_CHANGES, EXIT_ERROR, EXIT_REVIEW = 0, 1, 2, 3


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


def _yaml_encoding(data: bytes) -> str:
    return "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"


# ---------------------------------------------------------------------------------------------- per file
@dataclass
class FileResult:
    path: str
    status: str  # prefiltered | skip-file | unchanged | changed | failed
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None
    diff: str | None = None
    findings: list[dict] = field(default_factory=list)

    @property
    def review(self) -> list[dict]:
        """The sites this run leaves for a person: TODO comments written and diagnostics."""
        return [f for f in self.findings if f["kind"] != "rewrite"]


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


def process_source(
    data: bytes,
    settings: Settings,
    name: str,
    notebook: bool = False,
    project: Project | None = None,
    recipe: bool = False,
) -> tuple[FileResult, bytes]:
    """Transform one file's bytes. Returns the result and the new bytes (== data when unchanged). `recipe`: a YAML
    file (codemods.recipes)."""
    try:
        decoded = decode(data) if not recipe else Decoded(data.decode("utf-8-sig"), _yaml_encoding(data))
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        return FileResult(name, "failed", error=f"cannot decode: {exc}"), data
    if recipe:
        result = transform_recipe(decoded.text, settings, name, project=project)
    elif notebook:
        result = transform_notebook(decoded.text, settings, name, project=project)
    else:
        result = transform(decoded.text, settings, filename=name, project=project)
    if result.error is not None:
        return FileResult(name, "failed", error=result.error), data
    if result.skipped_file:
        return FileResult(name, "skip-file"), data
    if not result.parsed:
        return FileResult(name, "prefiltered"), data
    findings = [
        {
            "rule": f.rule,
            "kind": f.kind,
            "line": f.line,
            "col": f.col,
            "message": f.message,
        }
        | ({"cell": f.cell} if f.cell is not None else {})
        for f in result.findings
    ]
    if not result.changed or result.source == decoded.text:
        return FileResult(name, "unchanged", result.counts(), findings=findings), data
    try:
        new_data = result.source.encode(decoded.encoding)
    except UnicodeEncodeError as exc:
        return FileResult(name, "failed", error=f"cannot re-encode as {decoded.encoding}: {exc}"), data
    return FileResult(name, "changed", result.counts(), findings=findings), new_data


def process_file(
    path_str: str,
    settings: Settings,
    mode: str,
    display: str,
    project: Project | None = None,
) -> FileResult:
    path = Path(path_str)
    try:
        st = os.stat(path)
        data = path.read_bytes()
    except OSError as exc:
        return FileResult(display, "failed", error=f"cannot read: {exc.strerror or exc}")
    result, new_data = process_source(
        data, settings, display, notebook=path.suffix == NB_SUFFIX, project=project, recipe=path.suffix in YAML_SUFFIXES
    )
    if result.status != "changed":
        return result
    if mode == MODE_DIFF:
        encoding = _yaml_encoding(data) if path.suffix in YAML_SUFFIXES else decode(data).encoding
        result.diff = _unified_diff(data.decode(encoding), new_data.decode(encoding), display)
    elif mode == MODE_WRITE:
        try:
            atomic_write(path, new_data, st.st_mtime_ns)
        except OSError as exc:
            return FileResult(display, "failed", error=f"cannot write: {exc}")
    return result


_PROJECT: list[Project | None] = [None]  # this worker process's view of the project (set by _init_worker)


def _init_worker(roots: tuple[str, ...]) -> None:
    """Ctrl-C goes to the parent only; a terminated worker unwinds (SystemExit) so that a write in progress
    removes its temp file instead of leaving it behind. Each worker reads the project's other files itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    _PROJECT[0] = Project(roots) if roots else None


def _worker(job: tuple[str, str, Settings, str]) -> FileResult:
    path, display, settings, mode = job
    try:
        return process_file(path, settings, mode, display, _PROJECT[0])
    except Exception as exc:  # never let one file stop the run
        return FileResult(display, "failed", error=f"internal error: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------- CLI
EPILOG = """\
Exit codes: 0 nothing to do / done; 1 changes needed (--check, --diff); 3 nothing (else) to rewrite but sites need
review (diagnostics or TODO comments: code this run could not rewrite safely, listed as path:line:col: rule message);
2 usage error or a file that failed. A line with '# compat: skip' (a file with '# compat: skip-file') is left alone
and reports nothing."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m compat.codemod",
        description="Rewrite fine-tuning code off removed and renamed transformers/peft/TRL APIs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="*",
        help="files or directories (recursive); '-' reads stdin, writes stdout",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--diff", action="store_true", help="print a unified diff, write nothing")
    mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any file would change",
    )
    p.add_argument(
        "--report",
        metavar="FILE.json",
        help="write the summary and per-file results as JSON",
    )
    p.add_argument("--list-rules", action="store_true", help="list the rules and exit")
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="ID",
        help="run only these rules (repeatable)",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="ID",
        help="do not run these rules (repeatable)",
    )
    p.add_argument(
        "--target", action="append", default=[], metavar="PKG=VERSION",
        help="oldest version the rewritten code must run on, e.g. transformers=4.56 (repeatable); default: the "
        "minimum declared in the nearest pyproject.toml/requirements file, else the installed one, else newest",
    )  # fmt: skip
    p.add_argument(
        "--add-todos", "--strict", dest="add_todos", action="store_true",
        help="also write every diagnostic as a '# TODO(compat)' comment above its statement",
    )  # fmt: skip
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip matching paths (repeatable)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        help="worker processes (default: CPU count; 1 = in-process)",
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="only print failures, sites to review and diffs",
    )
    return p


def _split_ids(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _list_rules(settings: Settings, out) -> None:
    width = max((len(r.id) for r in RULES), default=10)
    for rule in RULES:
        needs = ", ".join(f"{k}>={v}" for k, v in rule.requirements()) or "any"
        gates = ", ".join(rule.gates) or "-"
        if rule.item_gates:
            gates += f" (per rewrite: {', '.join(rule.item_gates)})"
        state = "" if rule.gate_met(settings) else "  (off for the current targets)"
        print(
            f"{rule.id:<{width}}  needs {needs:<36} gate {gates:<32} {rule.summary}{state}",
            file=out,
        )


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


def _site_lines(result: FileResult) -> list[str]:
    """`path:line:col: rule message` for every site left (a TODO written now says so)."""
    out = []
    for f in result.review:
        note = " (TODO comment added)" if f["kind"] == "todo" else ""
        cell = f"cell {f['cell']}:" if "cell" in f else ""
        out.append(f"{result.path}:{cell}{f['line']}:{f['col']}: {f['rule']} {f['message']}{note}")
    return out


def run_stdin(settings: Settings, mode: str, quiet: bool) -> int:
    data = sys.stdin.buffer.read()
    result, new_data = process_source(data, settings, "<stdin>")
    if result.status == "failed":
        print(f"compat.codemod: <stdin>: {result.error}", file=sys.stderr)
        if mode == MODE_WRITE:
            sys.stdout.buffer.write(data)
        return EXIT_ERROR
    changed = result.status == "changed"
    if mode == MODE_WRITE:
        sys.stdout.buffer.write(new_data)
    elif mode == MODE_DIFF and changed:
        enc = decode(data).encoding
        sys.stdout.write(_unified_diff(data.decode(enc), new_data.decode(enc), "<stdin>"))
    for line in _site_lines(result):
        print(line, file=sys.stderr)
    if not quiet:
        counts = ", ".join(
            f"{r}: {c['rewrites']} rewrites, {c['todos']} TODOs, {c['diagnostics']} diagnostics"
            for r, c in result.counts.items()
        )
        print(
            f"compat.codemod: <stdin>: {result.status}{' (' + counts + ')' if counts else ''}",
            file=sys.stderr,
        )
    if changed and mode != MODE_WRITE:
        return EXIT_CHANGES
    return EXIT_REVIEW if result.review else EXIT_OK


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
        add_todos=args.add_todos,
        select=frozenset(select) if select else None,
        skip=frozenset(skip),
    )
    if args.list_rules:
        _list_rules(settings, sys.stdout)
        return EXIT_OK
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
            print(
                f"compat.codemod: off for these targets: {', '.join(off)}",
                file=sys.stderr,
            )
    if stdin_only:
        return run_stdin(settings, mode, args.quiet)

    t0 = time.perf_counter()
    files, errors = discover(args.paths, args.exclude)
    for e in errors:
        print(f"compat.codemod: {e}", file=sys.stderr)
    roots = tuple(str(Path(p).resolve()) for p in args.paths if Path(p).exists())
    results = run_files(files, settings, mode, args.jobs, rules, quiet=args.quiet, roots=roots)
    elapsed = time.perf_counter() - t0

    summary = summarize(results)
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
        return EXIT_ERROR
    if mode != MODE_WRITE and summary["changed"]:
        return EXIT_CHANGES
    return EXIT_REVIEW if summary["review"] else EXIT_OK


def run_files(
    files: Sequence[Path],
    settings: Settings,
    mode: str,
    jobs: int | None,
    rules: Sequence[type[Rule]],
    quiet: bool = False,
    roots: tuple[str, ...] = (),
) -> list[FileResult]:
    """Pre-filter on bytes in this process, then transform the candidates (in a pool when jobs > 1). `roots`: the
    paths the user gave, whose other files may define the classes a file imports."""
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
        if triggers is not None and path.suffix not in YAML_SUFFIXES:  # a recipe's keys: codemods.recipes checks
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
        with ctx.Pool(min(jobs, len(work)), initializer=_init_worker, initargs=(roots,)) as pool:
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
        _PROJECT[0] = Project(roots) if roots else None
        for i, job in zip(candidates, work):
            res = _worker(job)
            results[i] = res
            _emit(res, mode, quiet, progress)
            progress.step()
    progress.close()
    return [results[i] for i in range(len(files))]


def _emit(result: FileResult, mode: str, quiet: bool, progress: _Progress | None = None) -> None:
    sites = _site_lines(result)
    if progress is not None and (result.diff or result.status == "changed" or sites):
        progress.close()  # clear the bar before printing a line
    if result.diff:
        sys.stdout.write(result.diff)
        sys.stdout.flush()
    elif result.status == "changed" and not quiet:
        verb = "would rewrite" if mode == MODE_CHECK else "rewrote"
        print(f"{verb} {result.path}", file=sys.stderr)
    for line in sites:
        print(line, file=sys.stderr)


def summarize(results: Sequence[FileResult]) -> dict:
    summary = {
        "scanned": len(results),
        "prefiltered": 0,
        "skip-file": 0,
        "changed": 0,
        "unchanged": 0,
        "failed": 0,
    }
    per_rule: dict[str, dict[str, int]] = {}
    review = 0
    for r in results:
        summary[r.status] += 1
        review += len(r.review)
        for rule, counts in r.counts.items():
            entry = per_rule.setdefault(rule, {"rewrites": 0, "todos": 0, "diagnostics": 0, "files": 0})
            for key in ("rewrites", "todos", "diagnostics"):
                entry[key] += counts[key]
            entry["files"] += 1
    summary["review"] = review
    summary["rules"] = per_rule
    return summary


def _print_summary(summary: dict, results: Sequence[FileResult], mode: str, elapsed: float, quiet: bool) -> None:
    err = sys.stderr
    changed = {
        MODE_WRITE: "changed",
        MODE_DIFF: "would change",
        MODE_CHECK: "would change",
    }[mode]
    if not quiet:
        print(
            f"compat.codemod: {summary['scanned']} files scanned in {elapsed:.2f}s: "
            f"{summary['prefiltered']} skipped by the pre-filter, {summary['skip-file']} skip-file, "
            f"{summary['changed']} {changed}, {summary['unchanged']} unchanged, {summary['failed']} failed; "
            f"{summary['review']} sites need review",
            file=err,
        )
        for rule, c in sorted(summary["rules"].items()):
            print(
                f"  {rule}: {c['rewrites']} rewrites, {c['todos']} TODO comments, {c['diagnostics']} diagnostics "
                f"in {c['files']} files",
                file=err,
            )
    elif summary["review"]:
        print(f"compat.codemod: {summary['review']} sites need review", file=err)
    for r in results:
        if r.status == "failed":
            print(f"  failed: {r.path}: {r.error}", file=err)


if __name__ == "__main__":
    sys.exit(main())
