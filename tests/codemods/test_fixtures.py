"""Runs every fixture pair tests/codemods/fixtures/<rule-id>/<case>.py.in -> <case>.py.out.

Only the rule named by the directory runs. An optional first line `# target: transformers=4.55 peft=0.12` in the
.py.in sets the target versions of that case (so both sides of a rule's gate are tested). Each case checks:
output == expected, the output parses, running again on the output rewrites nothing (idempotence), and, when a
`<case>.diag` file exists, the sites reported (`LINE:COL RULE-ID`, one per line, positions in the .py.in).
A negative case is a .py.out identical to its .py.in (it may still report diagnostics).
Also: every TODO comment is at most 120 characters, and outputs and diagnostics do not depend on PYTHONHASHSEED.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codemods import RULES, rules_by_id
from codemods.engine import transform
from codemods.rule import MAX_TODO, Settings

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
_TARGET = re.compile(r"#\s*target:\s*(.*)")


def _cases():
    for path in sorted(FIXTURES.glob("*/*.py.in")):
        yield pytest.param(path, id=f"{path.parent.name}/{path.name[: -len('.py.in')]}")


def settings_for(source: str, rule_id: str) -> Settings:
    first = source.splitlines()[0] if source else ""
    targets = {}
    m = _TARGET.match(first)
    if m:
        for item in m.group(1).split():
            package, _, version = item.partition("=")
            targets[package] = version
    return Settings(targets=targets, select=frozenset({rule_id}))


def run_fixture(path: Path):
    source = path.read_text(encoding="utf-8")
    return source, transform(source, settings_for(source, path.parent.name), filename=str(path))


@pytest.mark.parametrize("path", list(_cases()))
def test_fixture(path: Path) -> None:
    rule_id = path.parent.name
    assert rule_id in rules_by_id(), f"fixture directory {rule_id!r} has no registered rule (codemods/rules RULES)"
    expected_path = path.with_name(path.name[: -len(".in")] + ".out")
    assert expected_path.exists(), f"missing {expected_path.name}"
    expected = expected_path.read_text(encoding="utf-8")
    source, result = run_fixture(path)
    settings = settings_for(source, rule_id)

    assert result.error is None, result.error
    assert result.source == expected
    ast.parse(result.source)
    changes = [f for f in result.findings if f.kind != "diagnostic"]
    if expected == source:
        assert not changes, f"negative case produced changes: {changes}"
    else:
        assert changes, "the output changed but nothing was counted"
    diag = path.with_name(path.name[: -len(".py.in")] + ".diag")
    if diag.exists():
        want = [line.split()[:2] for line in diag.read_text(encoding="utf-8").splitlines() if line.strip()]
        got = [[f"{f.line}:{f.col}", f.rule] for f in result.findings if f.kind != "rewrite"]
        assert got == want, f"sites reported: {got}"

    again = transform(result.source, settings, filename=str(path))
    assert again.error is None, again.error
    assert again.source == result.source, "second run is not a no-op"
    assert not [f for f in again.findings if f.kind != "diagnostic"], f"second run changed: {again.findings}"


def _recipe_cases():
    for path in sorted(FIXTURES.glob("*/*.yaml.in")):
        yield pytest.param(path, id=f"{path.parent.name}/{path.name[: -len('.yaml.in')]}")


@pytest.mark.parametrize("path", list(_recipe_cases()))
def test_recipe_fixture(path: Path) -> None:
    """A YAML recipe case <case>.yaml.in -> <case>.yaml.out (codemods.recipes), under the rule of its directory:
    output == expected, a second run changes nothing, the sites reported as in <case>.diag."""
    from codemods.recipes import transform_recipe

    rule_id = path.parent.name
    source = path.read_text(encoding="utf-8")
    expected = path.with_name(path.name[: -len(".in")] + ".out").read_text(encoding="utf-8")
    settings = settings_for(source, rule_id)
    result = transform_recipe(source, settings, str(path))
    assert result.error is None, result.error
    assert result.source == expected
    changes = [f for f in result.findings if f.kind != "diagnostic"]
    assert bool(changes) == (expected != source), result.findings
    assert all(f.rule == rule_id for f in result.findings), result.findings
    diag = path.with_name(path.name[: -len(".yaml.in")] + ".diag")
    if diag.exists():
        want = [line.split()[:2] for line in diag.read_text(encoding="utf-8").splitlines() if line.strip()]
        got = [[f"{f.line}:{f.col}", f.rule] for f in result.findings if f.kind != "rewrite"]
        assert got == want, f"sites reported: {got}"
    again = transform_recipe(result.source, settings, str(path))
    assert again.source == result.source and not [f for f in again.findings if f.kind != "diagnostic"]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_has_fixtures_and_a_migration_section(rule) -> None:
    assert rule.id and rule.summary and rule.triggers, "id, summary and triggers are required"
    cases = list((FIXTURES / rule.id).glob("*.py.in"))
    assert cases, f"no fixtures in tests/codemods/fixtures/{rule.id}/"
    migration = (ROOT / "MIGRATION.md").read_text(encoding="utf-8")
    anchor = rule.anchor or rule.id
    assert f"\n## {anchor}\n" in migration, f"MIGRATION.md has no '## {anchor}' section (TODO comments link to it)"


def test_todo_comments_are_short() -> None:
    long = []
    for path in FIXTURES.glob("*/*.py.out"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = line.strip()
            if text.startswith("# TODO(compat):") and len(text) > MAX_TODO:
                long.append(f"{path.parent.name}/{path.name}:{n}: {len(text)} characters")
    assert not long, "\n".join(long)


_DUMP = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fixtures_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
FIXTURES, run_fixture = module.FIXTURES, module.run_fixture
out = {}
for path in sorted(FIXTURES.glob("*/*.py.in")):
    _, result = run_fixture(path)
    out[str(path)] = [result.source, [[f.rule, f.kind, f.line, f.col, f.message] for f in result.findings]]
print(json.dumps(out))
"""


def test_output_does_not_depend_on_the_hash_seed() -> None:
    """Same input, same output and the same findings in the same order, whatever PYTHONHASHSEED is."""
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", _DUMP, __file__],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) > 100
    differ = [name for name in runs[0] if runs[0][name] != runs[1][name]]
    assert not differ, differ
