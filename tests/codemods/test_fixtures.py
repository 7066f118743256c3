"""Runs every fixture pair tests/codemods/fixtures/<rule-id>/<case>.py.in -> <case>.py.out.

Only the rule named by the directory runs. An optional first line `# target: transformers=4.55 peft=0.12` in the
.py.in sets the target versions of that case (so both sides of a rule's gate are tested). Each case checks:
output == expected, the output parses, and running again on the output changes nothing (idempotence).
A negative case is a .py.out identical to its .py.in.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from codemods import RULES, rules_by_id
from codemods.base import Settings
from codemods.engine import transform

FIXTURES = Path(__file__).parent / "fixtures"
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


@pytest.mark.parametrize("path", list(_cases()))
def test_fixture(path: Path) -> None:
    rule_id = path.parent.name
    rules = rules_by_id()
    assert rule_id in rules, f"fixture directory {rule_id!r} has no registered rule (codemods/__init__.py RULES)"
    expected_path = path.with_name(path.name[: -len(".in")] + ".out")
    assert expected_path.exists(), f"missing {expected_path.name}"
    source = path.read_text(encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8")
    settings = settings_for(source, rule_id)

    result = transform(source, settings, filename=str(path))
    assert result.error is None, result.error
    assert result.source == expected
    ast.parse(result.source)
    if expected == source:
        assert not result.findings, f"negative case produced findings: {result.findings}"
    else:
        assert result.findings, "the output changed but nothing was counted"

    again = transform(result.source, settings, filename=str(path))
    assert again.error is None, again.error
    assert again.source == result.source, "second run is not a no-op"
    assert not again.findings, f"second run reported {again.findings}"


def test_fixture_count() -> None:
    """design.md / issue 3: at least 60 cases for the TRL/peft rules."""
    mine = [p for p in FIXTURES.glob("*/*.py.in") if not p.parent.name.startswith("transformers-")]
    assert len(mine) >= 60, len(mine)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_has_fixtures_and_a_migration_section(rule) -> None:
    assert rule.id and rule.summary and rule.triggers, "id, summary and triggers are required"
    cases = list((FIXTURES / rule.id).glob("*.py.in"))
    assert cases, f"no fixtures in tests/codemods/fixtures/{rule.id}/"
    migration = (Path(__file__).resolve().parents[2] / "MIGRATION.md").read_text(encoding="utf-8")
    anchor = rule.anchor or rule.id
    assert f"\n## {anchor}\n" in migration, f"MIGRATION.md has no '## {anchor}' section (TODO comments link to it)"
