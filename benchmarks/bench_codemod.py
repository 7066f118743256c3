"""Codemod speed on real training code, single core, against the usual tools, all measured in the same run.

    python benchmarks/bench_codemod.py [--repeat N] [--extra] [--tools ours pyupgrade ...] [--slowest N]

Corpora (benchmarks/corpus.py builds them from PyPI under .bench/, reused when present): the main corpus and its
trigger subset (the files containing a trigger word of some rule: a file outside it never reaches a parser);
with --extra also the extra validation corpus and its trigger subset. Tools, each one process per run:

  ours           python -m compat.codemod --check --jobs 1 --target transformers=5.24 --target peft=0.21
                 --target trl=1.16
  pyupgrade      pyupgrade --py311-plus FILES (on a fresh copy: it rewrites in place; the copy is not timed)
  ruff           ruff check --select UP --isolated --no-cache --no-respect-gitignore --target-version py311,
                 RAYON_NUM_THREADS=1 (ruff's thread pool is rayon's)
  libcst-parse   libcst.parse_module on every file
  ast-parse      ast.parse on every file

Per tool: whole-process wall time (median and min of --repeat runs; runs of the tools are interleaved so that a
noisy stretch of the machine hits all of them), CPU time (user+sys of the process), and ours' median divided by the
tool's (and the same for the mins and for CPU time). Then, per corpus, the slowest files for ours, timed one by one
in this process through the engine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.corpus import BENCH, Corpus, build, rule_triggers, trigger_subset  # noqa: E402 (after the path fix)

TARGETS = {"transformers": "5.24", "peft": "0.21", "trl": "1.16"}
TOOLS = ("ours", "pyupgrade", "ruff", "libcst-parse", "ast-parse")
LABELS = {
    "ours": "ours (--check --jobs 1)",
    "pyupgrade": "pyupgrade --py311-plus",
    "ruff": "ruff check --select UP (1 thread)",
    "libcst-parse": "libcst parse only",
    "ast-parse": "ast.parse only",
}
# ours / pyupgrade (median wall) must be at most this
GOALS = {"full": 0.5, "trigger": 2.0}

PARSE_FLOOR = """
import sys
from pathlib import Path
if sys.argv[1] == "libcst":
    from libcst import parse_module as parse
else:
    from ast import parse
failed = 0
for p in sorted(Path(sys.argv[2]).rglob("*.py")):
    try:
        parse(p.read_bytes())
    except Exception:
        failed += 1
print(failed)
"""


@dataclass
class Runs:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rcs: set[int] = field(default_factory=set)
    note: str = ""


def find_tool(name: str) -> str | None:
    """The console script next to this interpreter first (the venv's), else on PATH."""
    return shutil.which(name, path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def ours_targets() -> tuple[list[str], str]:
    """The --target arguments, less any the CLI rejects (checked once with --list-rules); and a note."""

    def accepted(items: dict[str, str]) -> bool:
        argv = [sys.executable, "-m", "compat.codemod", "--list-rules"]
        for package, version in items.items():
            argv += ["--target", f"{package}={version}"]
        return subprocess.run(argv, check=False, cwd=ROOT, capture_output=True).returncode == 0

    keep = dict(TARGETS)
    if not accepted(keep):
        keep = {p: v for p, v in TARGETS.items() if accepted({p: v})}
    dropped = sorted(set(TARGETS) - set(keep))
    argv = [a for p, v in keep.items() for a in ("--target", f"{p}={v}")]
    return argv, f"the CLI rejected --target {', '.join(dropped)}: run without it" if dropped else ""


def command(tool: str, corpus: Corpus, scratch: Path, targets: list[str]) -> list[str] | None:
    """The argv that runs `tool` on `corpus` (None: the tool is not installed). pyupgrade gets a fresh copy."""
    py = sys.executable
    if tool == "ours":
        return [py, "-m", "compat.codemod", "--check", "-q", "--jobs", "1", *targets, str(corpus.root)]
    if tool == "pyupgrade":
        exe = find_tool("pyupgrade")
        if exe is None:
            return None
        copy = scratch / "tree"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(corpus.root, copy)
        return [exe, "--py311-plus", *(str(copy / p.relative_to(corpus.root)) for p in corpus.files)]
    if tool == "ruff":
        exe = find_tool("ruff")
        if exe is None:
            return None
        flags = ["--isolated", "--no-cache", "--no-respect-gitignore", "--target-version", "py311", "-q"]
        return [exe, "check", "--select", "UP", *flags, str(corpus.root)]
    if tool in ("libcst-parse", "ast-parse"):
        return [py, "-c", PARSE_FLOOR, tool.partition("-")[0], str(corpus.root)]
    raise ValueError(tool)


def failed(rc: int) -> bool:
    """Ours' exit codes: 0 nothing to do, 1 would change, 3 sites to review; 2 a file failed (or a usage error)."""
    return rc == 2 or rc < 0


def measure(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the child, exit code, the first stderr line about a failure, else the last) of one run."""
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, check=False, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    about = [line for line in err if "fail" in line or "error" in line.lower()] or err[-1:]
    return wall, cpu, proc.returncode, about[0].strip() if about else ""


def engine_runner():
    """A callable (source, filename) -> result that runs the engine in this process on one file, or a str: why not.

    The one place that knows the engine's API."""
    try:
        from codemods import Settings
        from codemods.engine import transform

        settings = Settings(targets=dict(TARGETS))
    except Exception as exc:
        return f"per-file times unavailable: the engine's API did not load ({type(exc).__name__}: {exc})"
    return lambda source, filename: transform(source, settings, filename=filename)


def decode(data: bytes) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(BytesIO(data).readline)
        return data.decode(encoding).removeprefix("\ufeff")
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return data.decode("utf-8", "replace")


def per_file(corpus: Corpus, run) -> tuple[list[tuple[float, Path]], float, list[str]]:
    """(seconds per file, slowest first; total; one line per file whose transform raised) in this process."""
    times: list[tuple[float, Path]] = []
    raised: list[str] = []
    for path in corpus.files:
        source = decode(path.read_bytes())
        t0 = time.perf_counter()
        try:
            run(source, str(path))
        except Exception as exc:
            raised.append(f"{path.relative_to(corpus.root)}: {type(exc).__name__}: {exc}")
        times.append((time.perf_counter() - t0, path))
    times.sort(key=lambda t: -t[0])
    return times, sum(t for t, _ in times), raised


def bench(corpora: list[tuple[str, Corpus]], tools: list[str], repeat: int) -> dict[tuple[str, str], Runs]:
    targets, note = ours_targets()
    if note:
        print(f"bench: {note}", file=sys.stderr)
    results: dict[tuple[str, str], Runs] = {}
    with tempfile.TemporaryDirectory(prefix="bench-codemod-", dir=BENCH) as tmp:
        for label, corpus in corpora:
            for r in range(repeat):
                for tool in tools:
                    runs = results.setdefault((label, tool), Runs(note=note if tool == "ours" else ""))
                    argv = command(tool, corpus, Path(tmp), targets)
                    if argv is None:
                        runs.note = f"{tool} not installed"
                        continue
                    wall, cpu, rc, last = measure(argv)
                    runs.wall.append(wall)
                    runs.cpu.append(cpu)
                    runs.rcs.add(rc)
                    if tool == "ours" and failed(rc):
                        runs.note = f"exit {rc}: {last}"
                    progress = f"{label:<14} {tool:<13} run {r + 1}/{repeat} {wall:8.2f}s wall {cpu:8.2f}s CPU"
                    print(f"  {progress}  rc={rc}", file=sys.stderr)
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def table(corpora: list[tuple[str, Corpus]], tools: list[str], results: dict[tuple[str, str], Runs]) -> list[str]:
    """The Markdown table, then one line per note (a tool missing, ours failing on a file)."""
    out = [
        (
            "| corpus | files | MB | tool | wall s (median) | wall s (min) | CPU s (median) | exit "
            "| ours / tool: wall median; wall min; CPU median | goal |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for label, corpus in corpora:
        ours = results.get((label, "ours"))
        # a file failed: that run did not do the work the others did, so no goal can be judged on it
        ours_ok = ours is not None and bool(ours.wall) and not any(failed(rc) for rc in ours.rcs)
        kind = "trigger" if label.endswith("trigger") else "full"
        for tool in tools:
            runs = results[(label, tool)]
            if runs.note:
                notes.append(f"- {label}, {tool}: {runs.note}")
            if not runs.wall:
                out.append(f"| {label} | {len(corpus.files)} | | {LABELS[tool]} | - | - | - | - | - | see below |")
                continue
            med, low, cpu = statistics.median(runs.wall), min(runs.wall), statistics.median(runs.cpu)
            rel = goal = ""
            if ours is not None and ours.wall and tool != "ours":
                ours_med, ours_min, ours_cpu = statistics.median(ours.wall), min(ours.wall), statistics.median(ours.cpu)
                rel = f"{ratio(ours_med, med)}; {ratio(ours_min, low)}; {ratio(ours_cpu, cpu)}"
                if tool == "pyupgrade":
                    verdict = ("met" if ours_med <= GOALS[kind] * med else "MISSED") if ours_ok else "n/a (ours failed)"
                    goal = f"ours <= {GOALS[kind]}x pyupgrade: {verdict}"
            rcs = ",".join(str(c) for c in sorted(runs.rcs))
            out.append(
                f"| {label} | {len(corpus.files)} | {corpus.bytes / 1e6:.2f} | {LABELS[tool]} | {med:.2f} | {low:.2f} "
                f"| {cpu:.2f} | {rcs} | {rel} | {goal} |"
            )
    return out + ([""] + notes if notes else [])


def header() -> list[str]:
    def version(argv: list[str]) -> str:
        try:
            return (
                subprocess.run(argv, check=False, capture_output=True, text=True, cwd=ROOT)
                .stdout.strip()
                .splitlines()[0]
            )
        except (OSError, IndexError):
            return "?"

    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    def dist(name: str) -> str:
        try:
            return dist_version(name)
        except PackageNotFoundError:
            return "not installed"

    commit = version(["git", "describe", "--always", "--dirty"])
    ruff = version([find_tool("ruff") or "ruff", "--version"])
    words, n_rules, _ = rule_triggers()
    return [
        (
            f"commit {commit}; python {platform.python_version()}; {os.cpu_count()} CPUs; load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {n_rules} rules, {len(words)} trigger words"
        ),
        f"libcst {dist('libcst')}; pyupgrade {dist('pyupgrade')}; {ruff}",
    ]


def slowest(label: str, corpus: Corpus, n: int, run) -> list[str]:
    if isinstance(run, str):
        return [f"{label}: {run}"]
    times, total, raised = per_file(corpus, run)
    head = f"{label}: {len(corpus.files)} files through the engine in this process: {total:.2f} s in all"
    if raised:
        head += f"; {len(raised)} raised, the first: {raised[0]}"
    if len(raised) == len(times):
        return [head]
    lines = [f"{head}; the {min(n, len(times))} slowest:"]
    for seconds, path in times[:n]:
        size = path.stat().st_size
        lines.append(f"  {seconds:7.2f} s  {size / 1e3:7.1f} KB  {path.relative_to(corpus.root)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and corpus (default 3)")
    parser.add_argument("--extra", action="store_true", help="also the extra validation corpus")
    parser.add_argument("--only-extra", action="store_true", help="the extra validation corpus only")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--slowest", type=int, default=5, metavar="N", help="slowest files to list (0: skip)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    names = ["extra"] if args.only_extra else ["main", "extra"] if args.extra else ["main"]
    corpora: list[tuple[str, Corpus]] = []
    for name in names:
        full = build(name)
        corpora += [(f"{name} full", full), (f"{name} trigger", trigger_subset(full))]

    results = bench(corpora, args.tools, args.repeat)
    lines = [*header(), ""]
    lines += table(corpora, args.tools, results)
    lines.append("")
    for label, corpus in corpora:
        if label.endswith("full"):
            subset = dict(corpora)[label.replace("full", "trigger")]
            lines.append(
                f"{label}: {len(corpus.files)} files, {corpus.bytes:,} bytes, {len(corpus.packages())} packages; "
                f"trigger subset: {len(subset.files)} files, {subset.bytes:,} bytes"
            )
    if args.slowest > 0 and "ours" in args.tools:
        run = engine_runner()
        for label, corpus in corpora:
            if label.endswith("full"):  # a file outside the trigger subset never reaches a parser
                lines += ["", *slowest(label, corpus, args.slowest, run)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
