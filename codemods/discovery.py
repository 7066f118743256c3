"""Which files a run covers: Python and notebook files under the given paths, `.gitignore`-aware inside a git work
tree, virtualenvs / build directories / VCS metadata skipped, `--exclude` globs honoured. YAML files too (given on
the command line or found under the paths): codemods.recipes rewrites the ones that read as TRL/transformers
recipes and leaves every other YAML file alone."""

from __future__ import annotations

import fnmatch
import os
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = ["NB_SUFFIX", "PY_SUFFIXES", "YAML_SUFFIXES", "discover"]

PY_SUFFIXES = (".py", ".pyi")
NB_SUFFIX = ".ipynb"
YAML_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", ".env", "__pycache__", "build", "dist",
        "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs", "site-packages", ".ipynb_checkpoints",
    }
)  # fmt: skip


def _git_files(directory: Path) -> list[Path] | None:
    """Files git would show in `directory` (tracked + untracked, not ignored); None when not in a work tree or
    when the directory itself is ignored (then the caller walks it: the user named it explicitly)."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", "."],
            cwd=directory, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    names = [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    if not names:
        ignored = subprocess.run(["git", "check-ignore", "-q", "."], cwd=directory, capture_output=True)
        if ignored.returncode == 0:
            return None
    return [directory / n for n in names]


def _walk(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(
            d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
            and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
        )  # fmt: skip
        for name in sorted(files):
            yield Path(root, name)


def _excluded(path: Path, excludes: Sequence[str]) -> bool:
    if not excludes:
        return False
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        rel = path.as_posix()
    parts = rel.split("/")
    candidates = [rel, path.as_posix(), path.name] + ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    candidates += parts[:-1]
    return any(fnmatch.fnmatch(c, pattern) for pattern in excludes for c in candidates)


def discover(paths: Sequence[str], excludes: Sequence[str] = ()) -> tuple[list[Path], list[str]]:
    """Python and notebook files under `paths`; returns (files, errors for paths that do not exist)."""
    files: list[Path] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen and not _excluded(p, excludes):
            seen.add(key)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_file():
            add(p)
        elif p.is_dir():
            listed = _git_files(p)
            candidates: Iterable[Path]
            if listed is None:
                candidates = _walk(p)
            else:
                candidates = (
                    f for f in sorted(listed)
                    if not SKIP_DIRS.intersection(f.relative_to(p).parts[:-1]) and f.is_file()
                )  # fmt: skip
            for f in candidates:
                if f.suffix in PY_SUFFIXES or f.suffix == NB_SUFFIX or f.suffix in YAML_SUFFIXES:
                    add(f)
        else:
            errors.append(f"{raw}: no such file or directory")
    return files, errors
