"""The version matrix covers the gate table, and MIGRATION.md shows the gate table as the code has it.

tox.ini is the one place where each env's versions are written (tests/_matrix.py reads it). Adding a gate to
compat/versions.py without an env on each of its sides fails here; so does an env whose installed versions drift
from its pins (checked inside each tox env), and a MIGRATION.md gate table that differs from the code.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

import _matrix
from compat import migration_table, versions

ENVS = _matrix.load_envs()
FLOOR = _matrix.supported_floor()
# What every env must pin exactly (the rest of the stack follows from these through each transformers' metadata).
CORE = ("torch", "transformers", "peft")


def sides_by_env(gate: versions.Gate) -> dict[str, str | None]:
    return {name: _matrix.side(gate, env.versions()) for name, env in ENVS.items()}


def test_tox_ini_lists_the_design_matrix():
    assert list(ENVS) == [
        "t446-p012", "t453-p015", "t455-p016", "t457-p017", "t500-p018", "t500-p017", "t522-p019", "t523-p021",
        "latest",
    ]
    parser = _matrix.read_tox_ini()
    for name in ENVS:
        assert parser.has_section(f"testenv:{name}"), f"env {name} has no [testenv:{name}] section"
    extra = {s.split(":", 1)[1] for s in parser.sections() if s.startswith("testenv:")} - set(ENVS) - {".pkg"}
    assert not extra, f"sections not in env_list (never run by `tox -p`): {sorted(extra)}"


@pytest.mark.parametrize("name", list(ENVS))
def test_env_pins(name):
    env = ENVS[name]
    assert env.python == Version("3.11")
    # torch always exactly 2.13.0: anything looser makes pip download the CUDA build (GBs).
    assert env.pins.get("torch") == Version("2.13.0"), f"{name}: torch must be pinned ==2.13.0"
    for pkg in CORE[1:]:
        assert pkg in env.pins, f"{name}: {pkg} missing"
        if name != "latest":
            assert env.pins[pkg] != _matrix.NEWEST, f"{name}: {pkg} must be pinned exactly"
    for pkg, have in env.pins.items():
        if pkg in FLOOR and have != _matrix.NEWEST:
            assert have >= FLOOR[pkg], f"{name}: {pkg} {have} is below the supported floor {FLOOR[pkg]}"
    m = re.fullmatch(r"t(\d)(\d\d)-p0(\d\d)", name)
    if m:  # the name says the versions: t457-p017 = transformers 4.57, peft 0.17
        assert env.pins["transformers"].release[:2] == (int(m.group(1)), int(m.group(2)))
        assert env.pins["peft"].release[:2] == (0, int(m.group(3)))


@pytest.mark.parametrize("gate", versions.GATES, ids=lambda g: g.name)
def test_gate_is_exercised_on_both_sides(gate):
    sides = sides_by_env(gate)
    new = [env for env, side in sides.items() if side == "new"]
    old = [env for env, side in sides.items() if side == "old"]
    assert new, f"gate {gate.name} ({gate.requirement}): no env on the new side; add one to tox.ini"
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
    decision. Today: peft < 0.12 is not supported, so these two gates only guard code paths we never take (the
    autocast keyword is always there) or the codemod (old scripts)."""
    assert {g.name for g in versions.GATES if _matrix.below_floor(g, FLOOR)} == {
        "autocast_adapter_dtype_kwarg",
        "int8_training_removed",
    }


def test_the_design_document_matrix_matches_tox_ini():
    design = _matrix.ROOT.parent / "shared" / "design.md"
    if not design.exists():
        pytest.skip(f"{design} not found (the shared design document lives beside the checkout)")
    rows = {}
    for line in design.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in ENVS:
            rows[cells[0]] = cells[1:4]
    assert set(rows) == set(ENVS)
    for name, (tf, peft, bnb) in rows.items():
        env = ENVS[name]
        if name == "latest":
            assert env.pins["transformers"] == env.pins["peft"] == env.pins["bitsandbytes"] == _matrix.NEWEST
            continue
        assert env.pins["transformers"] == Version(tf)
        assert env.pins["peft"] == Version(peft)
        if bnb.startswith("none"):
            assert "bitsandbytes" not in env.pins, f"{name}: the design says no bitsandbytes"
        else:
            assert env.pins["bitsandbytes"] == Version(bnb)


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
        assert _matrix.side(gate, versions.installed_versions()) == _matrix.side(gate, env.versions()), gate.name


def test_coverage_table_is_printable():
    """A readable matrix of gate x env (run with -s to see it); also checks every cell is 'old', 'new' or '-'."""
    names = list(ENVS)
    lines = [f"{'gate':<31}" + "".join(f"{n:>11}" for n in names)]
    for gate in versions.GATES:
        cells = sides_by_env(gate)
        assert set(cells.values()) <= {"old", "new", None}
        lines.append(f"{gate.name:<31}" + "".join(f"{(cells[n] or '-'):>11}" for n in names))
    print("\n".join(lines))


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


def test_metadata_lookup_is_not_an_import():
    # versions.installed reads metadata; this pins that the tox env's packages are visible that way.
    assert versions.installed("packaging") == Version(metadata.version("packaging"))
