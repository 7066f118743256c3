"""The target versions of a run: `--target PKG=VERSION`, else the minimum declared in the nearest pyproject.toml /
requirements file, else the installed version (read from package metadata, never imported), else the newest."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from codemods.rule import Rule

__all__ = ["declared_minimums", "find_declared", "resolve_targets"]

REQUIREMENT_FILES = (
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-train.txt",
    "requirements.in",
)


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
    packages = sorted({p for r in rules for p in r.target_packages()} | set(explicit))
    targets: dict[str, str] = {}
    sources: dict[str, str] = {}
    declared, declared_in = find_declared(start, [p for p in packages if p not in explicit])
    for package in packages:
        if package in explicit:
            targets[package], sources[package] = explicit[package], "--target"
        elif package in declared:
            targets[package], sources[package] = (
                str(declared[package]),
                f"minimum in {declared_in}",
            )
        elif (have := _installed(package)) is not None:
            targets[package], sources[package] = have.base_version, "installed"
        else:
            sources[package] = "newest (not declared, not installed)"
    return targets, sources


def _installed(package: str) -> Version | None:
    from compat.versions import (
        installed,
    )  # package metadata only: imports no ML library

    return installed(package)
