"""The version matrix covers the gate table, and MIGRATION.md shows the gate table as the code has it.

tox.ini is the one place where each env's versions are written (tests/_matrix.py reads it). Adding a gate to
compat/versions.py without an env on each of its sides fails here; so does an env whose installed versions drift
from its pins (checked inside each tox env), and a MIGRATION.md gate table that differs from the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import _matrix
import pytest
from packaging.version import Version

from compat import migration_table, versions

ENVS = _matrix.load_envs()
FLOOR = _matrix.supported_floor()
# What every env must pin exactly (the rest of the stack follows from these through each transformers' metadata).
CORE = ("torch", "transformers", "peft")


def sides_by_env(gate: versions.Gate) -> dict[str, str | None]:
    return {name: gate.side(env.versions()) for name, env in ENVS.items()}


def test_tox_ini_env_list_has_a_section_for_each_env_and_no_other():
    names = _matrix.env_list()
    assert names and len(names) == len(set(names)), f"env_list empty or with duplicates: {names}"
    parser = _matrix.read_tox_ini()
    for name in names:
        assert parser.has_section(f"testenv:{name}"), f"env {name} has no [testenv:{name}] section"
    extra = {s.split(":", 1)[1] for s in parser.sections() if s.startswith("testenv:")} - set(names) - {".pkg"}
    assert not extra, f"sections not in env_list (never run by `tox -p`): {sorted(extra)}"


def test_ci_runs_envs_of_the_matrix():
    """.ci/run names the envs CI runs: each must be one of tox.ini's (a renamed env would otherwise stop CI)."""
    text = (_matrix.ROOT / ".ci" / "run").read_text(encoding="utf-8")
    runs = [name for match in re.findall(r"tox -e ([\w.,-]+)", text) for name in match.split(",")]
    assert runs, ".ci/run runs no tox env"
    assert set(runs) <= set(ENVS), f"CI runs envs that tox.ini does not define: {sorted(set(runs) - set(ENVS))}"


def test_trl_envs_run_the_differential_test_on_both_transformers_lines():
    """TRL is the oracle of the preparation: every env that installs trl runs the differential test, and the envs
    with trl cover transformers 5.x (or the newest) and the last 4.x line."""
    with_trl = {name: env for name, env in ENVS.items() if "trl" in env.pins}
    assert with_trl, "no tox env installs trl: nothing compares compat with TRL"
    for name, env in with_trl.items():
        assert "tests/test_trl_parity.py" in env.commands, f"{name} installs trl but does not run the differential test"
    majors = {env.pins["transformers"].major for env in with_trl.values()}
    assert {4} <= majors and (majors - {4}), f"trl envs cover transformers majors {sorted(majors)} only"


@pytest.mark.parametrize("name", list(ENVS))
def test_env_pins(name):
    env = ENVS[name]
    assert env.python == Version("3.11")
    # torch always exactly 2.13.0: anything looser makes pip download the CUDA build (GBs).
    assert env.pins.get("torch") == Version("2.13.0"), f"{name}: torch must be pinned ==2.13.0"
    for pkg in CORE[1:]:
        assert pkg in env.pins, f"{name}: {pkg} missing"
        if not name.endswith("latest"):  # only a *latest env may take the newest release
            assert env.pins[pkg] != _matrix.NEWEST, f"{name}: {pkg} must be pinned exactly"
    for pkg, have in env.pins.items():
        if pkg in FLOOR and have != _matrix.NEWEST:
            assert have >= FLOOR[pkg], f"{name}: {pkg} {have} is below the supported floor {FLOOR[pkg]}"
    m = re.fullmatch(r"(?:trl-)?t(\d)(\d\d)-p0(\d\d)", name)
    if m:  # the name says the versions: t457-p017 = transformers 4.57, peft 0.17
        assert env.pins["transformers"].release[:2] == (int(m.group(1)), int(m.group(2)))
        assert env.pins["peft"].release[:2] == (0, int(m.group(3)))


@pytest.mark.parametrize("gate", versions.GATES, ids=lambda g: g.name)
def test_gate_is_exercised_on_both_sides(gate):
    sides = sides_by_env(gate)
    new = [env for env, side in sides.items() if side == "new"]
    old = [env for env, side in sides.items() if side == "old"]
    assert new, f"gate {gate.name} ({gate.requirement}): no env on the new side; add one to tox.ini"
    if gate.name in TRL_TARGET_GATES:
        # The old side is an old TRL, which only the codemod's targets reach: test_trl_gates_have_fixtures_on_both_sides.
        return
    if _matrix.below_floor(gate, FLOOR):
        # The old side is below what pyproject's `train` extra supports: no env may go there (test_env_pins).
        assert not old
        return
    assert old, (
        f"gate {gate.name} ({gate.requirement}): no env on the old side; add one to tox.ini, or raise the supported "
        "floor in pyproject.toml's train extra and say in delete_when that the gate can go"
    )


def test_below_floor_gates_are_the_ones_expected():
    """Gates whose old side is unsupported: listed so that raising a floor (or adding such a gate) is a visible
    decision. Today: peft < 0.12 and transformers < 4.46 are not supported, so these gates only guard code paths we
    never take (the autocast keyword is always there) or the codemod (old scripts)."""
    assert {g.name for g in versions.GATES if _matrix.below_floor(g, FLOOR)} == {
        "autocast_adapter_dtype_kwarg",
        "int8_training_removed",
        "kbit_training_function",
        "bnb_quantization_config",
        "processing_class_kwarg",
        "eval_strategy_kwarg",
        "include_for_metrics_field",
    }


# The TRL gates: compat's runtime does not use TRL (the trl envs install the newest TRL, the oracle of the preparation),
# so no env is on their old side; they compare the codemod's *target* trl, and their old sides are exercised by the
# codemod fixtures (`# target: trl=X` below the gate) and by TRL's old scripts in tests/e2e.
TRL_TARGET_GATES = frozenset(g.name for g in versions.GATES if {pkg for pkg, _ in g.since} == {"trl"})


def _just_below(version: Version) -> str:
    major, minor, micro = (list(version.release) + [0, 0])[:3]
    if micro:
        return f"{major}.{minor}.{micro - 1}"
    return f"{major}.{minor - 1}.999" if minor else f"{major - 1}.999.999"


def _fixture_runs(rule_id: str, trl: str) -> list:
    """(output, findings) of every fixture of `rule_id` with the target trl set to `trl` (other targets kept)."""
    from codemods.engine import transform
    from codemods.recipes import transform_recipe
    from codemods.rule import Settings

    out = []
    for path in sorted((_matrix.ROOT / "tests" / "codemods" / "fixtures" / rule_id).glob("*.*.in")):
        source = path.read_text(encoding="utf-8")
        first = source.split("\n", 1)[0]
        m = re.match(r"#\s*target:\s*(.*)", first)
        targets = dict(item.partition("=")[::2] for item in m.group(1).split()) if m else {}
        settings = Settings(targets={**targets, "trl": trl}, select=frozenset({rule_id}))
        if path.name.endswith(".yaml.in"):
            result = transform_recipe(source, settings, str(path))
        else:
            result = transform(source, settings, filename=str(path))
        out.append((result.source, [(f.kind, f.line, f.col, f.message) for f in result.findings]))
    return out


@pytest.mark.parametrize("name", sorted(TRL_TARGET_GATES))
def test_trl_gates_have_fixtures_on_both_sides(name):
    """Each TRL gate is declared by a codemod rule, and some fixture of that rule comes out differently with the
    target trl just below the gate and at it: the fixtures exercise both sides."""
    from codemods import RULES

    gate = versions.GATES_BY_NAME[name]
    version = Version(dict(gate.since)["trl"])
    users = sorted(r.id for r in RULES if name in r.gates + r.item_gates)
    assert users, f"gate {name}: no codemod rule declares it"
    below, at = _just_below(version), str(version)
    assert any(_fixture_runs(rule, below) != _fixture_runs(rule, at) for rule in users), (
        f"gate {name}: no fixture of {users} changes between trl {below} and {at}; add one that uses what it gates"
    )


def test_running_env_matches_tox_ini():
    """Inside a tox env, the installed stack is exactly what tox.ini says (the coverage above is about real envs)."""
    name = _matrix.running_env()
    if name not in ENVS:
        pytest.skip("not running inside one of the tox envs (TOX_ENV_NAME unset or unknown)")
    env = ENVS[name]
    for pkg, pin in env.pins.items():
        have = versions.installed(pkg)
        assert have is not None, f"{pkg} is pinned in tox.ini [testenv:{name}] but not installed"
        if pin == _matrix.NEWEST:
            # "newest" must really be on the new side of every gate on this package.
            for gate in versions.GATES:
                for gpkg, ver in gate.since:
                    if gpkg == pkg:
                        assert have >= Version(ver), f"{pkg} {have} is not newer than gate {gate.name}"
        else:
            assert Version(have.base_version) == pin, f"{pkg}: installed {have}, tox.ini pins {pin}"
    for pkg in ("bitsandbytes",):
        if pkg not in env.pins:
            assert versions.installed(pkg) is None, f"{pkg} is installed but tox.ini does not list it for {name}"
    for gate in versions.GATES:
        assert gate.side(versions.installed_versions()) == gate.side(env.versions()), gate.name


# --- MIGRATION.md ------------------------------------------------------------------------------------------------


def test_migration_md_gate_table_matches_the_code():
    path = _matrix.ROOT / "MIGRATION.md"
    text = path.read_text(encoding="utf-8")
    assert migration_table.current_block(text) == migration_table.gate_table_block(), (
        "MIGRATION.md's gate table differs from compat/versions.py; run: python -m compat.migration_table --write"
    )


def test_gate_table_has_one_row_per_gate_with_its_facts():
    table = migration_table.gate_table_markdown()
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(versions.GATES)
    for gate, row in zip(versions.GATES, rows):
        assert row.startswith(f"| `{gate.name}` |")
        for pkg, ver in gate.since:
            assert f"{pkg} {ver}" in row
        assert gate.link in row


def test_migration_table_write_touches_only_the_block(tmp_path: Path):
    src = "# Title\r\n\r\nintro\r\n<!-- gate-table:start -->\nstale\n<!-- gate-table:end -->\r\ntail\ttabs\r\n"
    path = tmp_path / "MIGRATION.md"
    path.write_bytes(src.encode())
    assert migration_table.main(["--path", str(path), "--check"]) == 1
    assert migration_table.write(path) is True
    out = path.read_bytes().decode()
    assert out.startswith("# Title\r\n\r\nintro\r\n<!-- gate-table:start -->\n")
    assert out.endswith("<!-- gate-table:end -->\r\ntail\ttabs\r\n")
    assert migration_table.write(path) is False  # a second run is a no-op
    assert migration_table.main(["--path", str(path), "--check"]) == 0


def test_migration_table_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, compat.migration_table as m; m.gate_table_markdown();"
        "heavy = [x for x in ('torch', 'transformers', 'peft', 'bitsandbytes') if x in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_matrix.ROOT)
