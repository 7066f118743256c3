"""The gate table, the installed-version lookup, and the promise that importing compat stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from compat import versions

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("torch", "transformers", "peft", "bitsandbytes")


def test_every_gate_is_documented():
    assert len(versions.GATES) == len(versions.GATES_BY_NAME)
    for gate in versions.GATES:
        assert gate.since and all(Version(v) for _, v in gate.since)
        assert gate.old and gate.new and gate.delete_when
        assert gate.link.startswith("https://github.com/"), gate.name


@pytest.mark.parametrize(
    "have,side", [("4.55.4", "old"), ("4.56.0", "new"), ("4.56.0rc1", "new"), ("5.0.0.dev0", "new"), ("4.56", "new")]
)
def test_side_of_a_gate(have, side):
    gate = versions.GATES_BY_NAME["dtype_kwarg"]
    assert gate.side({"transformers": Version(have)}) == side


def test_two_package_gate_needs_both():
    gate = versions.GATES_BY_NAME["bnb_cpu_kbit"]
    assert gate.side({"transformers": Version("4.57.6"), "bitsandbytes": Version("0.47.0")}) == "new"
    assert gate.side({"transformers": Version("4.57.6"), "bitsandbytes": Version("0.46.1")}) == "old"
    assert gate.side({"transformers": Version("4.52.4"), "bitsandbytes": Version("0.50.2")}) == "old"
    assert gate.side({"transformers": Version("4.57.6"), "bitsandbytes": None}) is None
    # below one of its versions is the old side, whatever the other package
    assert gate.side({"transformers": Version("4.46.3"), "bitsandbytes": None}) == "old"


def test_installed_reads_metadata():
    from importlib.metadata import version

    assert versions.installed("packaging") == Version(version("packaging"))
    assert versions.installed("surely-not-installed-package") is None


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('HEAVY:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.rsplit("HEAVY:", 1)[1].split()


def test_import_compat_is_light():
    assert _loaded_after("import compat, compat.versions") == []


def test_versions_cli_is_light_and_prints_every_gate():
    code = "import runpy; sys.argv = ['compat.versions']; runpy.run_module('compat.versions', run_name='__main__')"
    assert _loaded_after(code) == []
    out = subprocess.run([sys.executable, "-m", "compat.versions"], capture_output=True, text=True, timeout=60)
    for gate in versions.GATES:
        assert gate.name in out.stdout
    assert "transformers" in out.stdout and "side" in out.stdout


def test_public_names_resolve_lazily():
    import importlib

    import compat

    for name in compat.__all__:
        value = getattr(compat, name)
        module = importlib.import_module(compat._PUBLIC[name])
        assert value is getattr(module, name), name  # the name is its module's object, not a copy
    assert isinstance(compat.SIMPLE_CHAT_TEMPLATE, str)
    with pytest.raises(AttributeError):
        compat.does_not_exist  # noqa: B018


def test_the_version_is_written_once():
    """pyproject.toml holds the version; compat.__version__ reads it from the installed distribution."""
    from importlib import metadata

    import tomllib

    import compat

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert compat.__version__ == metadata.version("model-prep-compat") == pyproject["project"]["version"]
    written = [p for p in (ROOT / "compat").rglob("*.py") if pyproject["project"]["version"] in p.read_text()]
    assert not written, f"the version number is written again in {written}"
