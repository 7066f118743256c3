"""The e2e harness runs only in the `e2e` tox env (or with COMPAT_E2E=1): it needs TRL, datasets and the newest
transformers/peft, downloads three TRL wheels and trains 2 steps per script. Everywhere else it is skipped with that
reason.

The runs are made once per session, for the selected tests only, and each test asserts on its run: the scripts as
shipped one after the other in one process (they fail at their imports), the rewritten ones a process each,
`COMPAT_E2E_JOBS` at a time (default 2). The table (script x version: before / after the codemod) is printed at the
end of the session and written to `--e2e-report FILE` (or `$COMPAT_E2E_REPORT`) as markdown.
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import trl_scripts

ENABLED = os.environ.get("TOX_ENV_NAME") == "e2e" or os.environ.get("COMPAT_E2E") == "1"
SKIP_REASON = (
    "the TRL example-script harness runs in `tox -e e2e` only (TRL 1.x, datasets and the newest transformers/peft; "
    "it downloads TRL 0.8.6/0.11.4/0.12.2 wheels and trains 2 steps per script); COMPAT_E2E=1 runs it here"
)
_RESULTS: dict[tuple[str, str], trl_scripts.Outcome] = {}


def pytest_addoption(parser):
    parser.addoption("--e2e-report", default=None, help="write the e2e before/after table (markdown) to this file")


HERE = Path(__file__).resolve().parent
MODES = {"test_fails_before_codemod": "before", "test_trains_after_codemod": "after"}  # test function -> run mode


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from . import tiny_stack

    return tiny_stack.build_all(tmp_path_factory.mktemp("tiny"))


def _run(mode: str, case: trl_scripts.Case, tiny: dict[str, Path], root: Path) -> trl_scripts.Outcome:
    work = root / mode / case.id
    shutil.rmtree(work, ignore_errors=True)
    script = trl_scripts.extract_script(case.version, case.script, trl_scripts.wheel_cache(), work / "src")
    codemod = None
    if mode == "after":
        codemod = trl_scripts.codemod(script)
    outcome = trl_scripts.run(script, case, tiny, work / "run")
    outcome.codemod = codemod
    return outcome


@pytest.fixture(scope="session")
def e2e_runs(request, tiny, tmp_path_factory) -> dict[tuple[str, str], trl_scripts.Outcome]:
    """(mode, case id) -> Outcome, for every selected test of tests/e2e (run in parallel, once)."""
    wanted = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        mode = MODES.get(getattr(item, "originalname", ""))
        if mode and "case" in params and not item.get_closest_marker("skip"):
            wanted.append((mode, params["case"]))
    root = tmp_path_factory.mktemp("runs")
    todo = [(mode, case) for mode, case in dict.fromkeys(wanted) if (mode, case.id) not in _RESULTS]
    before = [case for mode, case in todo if mode == "before"]
    after = [case for mode, case in todo if mode == "after"]
    jobs = max(1, int(os.environ.get("COMPAT_E2E_JOBS", "2")))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        shipped = pool.submit(_run_shipped, before, tiny, root) if before else None
        for case, outcome in zip(after, pool.map(lambda case: _run("after", case, tiny, root), after)):
            _RESULTS["after", case.id] = outcome
        if shipped is not None:
            for case_id, outcome in shipped.result().items():
                _RESULTS["before", case_id] = outcome
    return _RESULTS


def _run_shipped(cases, tiny, root: Path) -> dict[str, trl_scripts.Outcome]:
    """The "before" runs: the scripts as shipped, in one process (they fail at imports, long before training)."""
    jobs = []
    for case in cases:
        src = root / "before" / case.id / "src"
        shutil.rmtree(src, ignore_errors=True)
        jobs.append((trl_scripts.extract_script(case.version, case.script, trl_scripts.wheel_cache(), src), case))
    return trl_scripts.run_shipped(jobs, tiny, root / "before" / "runs")


def _diagnostics(outcome: trl_scripts.Outcome) -> list[str]:
    """`line:col rule-id` of each site the codemod reported for review (its `path:line:col: rule message` lines)."""
    if outcome.codemod is None:
        return []
    text = outcome.codemod.stdout + outcome.codemod.stderr
    return [f"{m[0]}:{m[1]} {m[2]}" for m in re.findall(r"\.py:(\d+):(\d+): ([\w-]+)", text)]


def _cell(outcome: trl_scripts.Outcome | None) -> str:
    if outcome is None:
        return "not run"
    if outcome.trained:
        verdict = "trains" + (" (then the offline Hub push fails)" if outcome.failed_only_at_push else "")
        return f"{verdict}; losses {', '.join(f'{x:.3f}' for x in outcome.losses)}"
    return f"fails: `{outcome.error[:110]}` at `{outcome.error_site[:80]}`".replace("|", "\\|")


def report() -> str:
    lines = [
        "| script | TRL | before the codemod | after the codemod | codemod left for review | s |",
        "|---|---|---|---|---|---|",
    ]
    for case in trl_scripts.CASES:
        if case.skip:
            lines.append(f"| {case.script} | {case.version} | not run: {case.skip} | | | |")
            continue
        before, after = _RESULTS.get(("before", case.id)), _RESULTS.get(("after", case.id))
        if before is None and after is None:
            continue
        left = ", ".join(_diagnostics(after)) if after else ""
        seconds = sum(o.seconds for o in (before, after) if o)
        lines.append(f"| {case.script} | {case.version} | {_cell(before)} | {_cell(after)} | {left} | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _RESULTS:
        return
    table = report()
    terminalreporter.write_sep("=", "TRL example scripts on today's stack: before / after the codemod")
    terminalreporter.write(table)
    path = config.getoption("e2e_report", default=None) or os.environ.get("COMPAT_E2E_REPORT")
    if path:
        Path(path).write_text(table, encoding="utf-8")
        terminalreporter.write_line(f"e2e report written to {path}")
