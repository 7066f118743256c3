"""Reads the version matrix from tox.ini, the one place where each env's versions are written down.

Used by tests/test_gate_coverage.py: every gate covered on both sides (`Gate.side` of each env's pins), the running
env is what tox.ini says.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from compat import versions

ROOT = Path(__file__).resolve().parent.parent
TOX_INI = ROOT / "tox.ini"
PYPROJECT = ROOT / "pyproject.toml"

# An unpinned dependency (the `latest` env) stands for "the newest release": on the new side of every gate.
# test_gate_coverage.test_running_env_matches_tox_ini checks that claim inside that env.
NEWEST = Version("9999")


@dataclass(frozen=True)
class Env:
    name: str
    requirements: tuple[Requirement, ...]
    python: Version = Version("3.11")
    pins: dict = field(default_factory=dict)  # package -> Version (exact pin) or NEWEST (listed, unpinned)
    commands: str = ""

    def versions(self) -> dict[str, Version | None]:
        """The stack of this env as compat.versions sees it: every package of a gate, None when not installed."""
        have = {pkg: None for gate in versions.GATES for pkg, _ in gate.since}
        have.update({pkg: None for pkg in versions.STACK})
        have.update(self.pins)
        have["python"] = self.python
        return have


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin(req: Requirement) -> Version | None:
    specs = list(req.specifier)
    if not specs:
        return NEWEST
    if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
        return Version(specs[0].version)
    return None  # a range: not a pin (only allowed for helper packages such as httpx<1)


def _deps(parser: configparser.ConfigParser, section: str) -> list[str]:
    raw = parser.get(section, "deps", fallback="")
    lines: list[str] = []
    for line in raw.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        ref = re.fullmatch(r"\{\[([^\]]+)\]deps\}", line)
        if ref:
            lines.extend(_deps(parser, ref.group(1)))
        else:
            lines.append(line)
    return lines


def _python(parser: configparser.ConfigParser, section: str) -> Version:
    base = parser.get(section, "base_python", fallback=None) or parser.get("testenv", "base_python")
    match = re.search(r"(\d+)\.(\d+)", base)
    assert match, f"[{section}] base_python must name a Python version, got {base!r}"
    return Version(f"{match.group(1)}.{match.group(2)}")


def read_tox_ini(path: Path = TOX_INI) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return parser


def env_list(parser: configparser.ConfigParser | None = None) -> list[str]:
    parser = parser or read_tox_ini()
    raw = parser.get("tox", "env_list", fallback="") or parser.get("tox", "envlist", fallback="")
    return [name.strip() for name in re.split(r"[\s,]+", raw) if name.strip()]


def load_envs(path: Path = TOX_INI) -> dict[str, Env]:
    parser = read_tox_ini(path)
    envs = {}
    for name in env_list(parser):
        section = f"testenv:{name}"
        reqs = tuple(Requirement(line) for line in _deps(parser, section))
        pins = {}
        for req in reqs:
            pin = _pin(req)
            if pin is not None:
                pins[_canonical(req.name)] = pin
        commands = parser.get(section, "commands", fallback=None) or parser.get("testenv", "commands", fallback="")
        envs[name] = Env(name, reqs, _python(parser, section), pins, commands)
    return envs


def supported_floor() -> dict[str, Version]:
    """The lowest supported version of each package: the `>=` bounds of pyproject's `train` extra."""
    import tomllib

    with open(PYPROJECT, "rb") as f:
        project = tomllib.load(f)["project"]
    floor = {}
    for line in project.get("optional-dependencies", {}).get("train", []):
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator == ">=":
                floor[_canonical(req.name)] = Version(spec.version)
    return floor


def below_floor(gate: versions.Gate, floor: dict[str, Version] | None = None) -> bool:
    """True when the old side of `gate` lies entirely below what we support: no env can (or should) exercise it."""
    floor = supported_floor() if floor is None else floor
    return all(pkg in floor and floor[pkg] >= Version(ver) for pkg, ver in gate.since)


def running_env() -> str | None:
    """The tox env these tests run in, or None outside tox."""
    return os.environ.get("TOX_ENV_NAME")
