"""Repo-wide knowledge: the user's own classes defined in other files of the project.

When a file does `from component.model import BloomForCausalLM` (or `from .trainer import MyTrainer`), and the
class is defined in another file under the paths of the run, that file is parsed (Python's ast only, on demand, once
per process) and the class resolved there, bases and all: a subclass of a transformers model, of `Trainer`, of
`TrainingArguments` or of a TRL config counts as one. Module-level aliases and registries in that file are followed
the same way (`X = Y`, re-exports). Only CapWords names are looked up (classes and registries, not functions).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from codemods.analysis import FileAnalysis
from codemods.kinds import Kind, Resolver

__all__ = ["Project"]


class Project:
    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = [p if p.is_dir() else p.parent for p in (Path(r).resolve() for r in roots)]
        self._resolvers: dict[Path, Resolver | None] = {}
        self._modules: dict[tuple[str, str], Path | None] = {}
        self._active: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------------------------------ modules
    def _bases(self, importing: Path | None) -> list[Path]:
        """Directories an absolute import may be relative to: the importing file's ancestors inside a root, the
        roots, and their `src/` folders."""
        out: list[Path] = []
        if importing is not None:
            for parent in importing.parents:
                if not any(parent == r or r in parent.parents for r in self.roots):
                    break
                out.append(parent)
        for r in self.roots:
            out += [r, r / "src", *r.parents[:1]]
        return list(dict.fromkeys(out))

    def module_file(self, module: str, importing: str | None) -> Path | None:
        origin = Path(importing).resolve() if importing else None
        key = (module, str(origin.parent) if origin else "")
        if key in self._modules:
            return self._modules[key]
        found = None
        if module.startswith("."):
            if origin is not None:
                level = len(module) - len(module.lstrip("."))
                base = origin.parent
                for _ in range(level - 1):
                    base = base.parent
                found = _module_at(base, module.lstrip("."))
        else:
            for base in self._bases(origin):
                found = _module_at(base, module)
                if found is not None:
                    break
        if found is not None and not any(found == r or r in found.parents for r in self.roots):
            found = None  # only the project's own files
        self._modules[key] = found
        return found

    def resolver(self, path: Path) -> Resolver | None:
        if path not in self._resolvers:
            self._resolvers[path] = None
            try:
                source = path.read_text(encoding="utf-8", errors="replace")
                tree = ast.parse(source, str(path))
            except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
                return None
            _drop_function_bodies(tree.body)
            self._resolvers[path] = Resolver(FileAnalysis(source, tree), self, str(path))
        return self._resolvers[path]

    # ------------------------------------------------------------------------------------------ classes
    def class_kind(self, qname: str, importing: str | None) -> Kind | None:
        """The kind of the module-level name `qname` ("pkg.mod.Name" or ".mod.Name") when a file of the project
        defines it; None otherwise."""
        module, _, name = qname.rpartition(".")
        if not module or not name[:1].isupper():
            return None
        path = self.module_file(module, importing)
        if path is None:
            return None
        key = (str(path), name)
        if key in self._active:
            return None
        resolver = self.resolver(path)
        if resolver is None:
            return None
        self._active.add(key)
        try:
            bindings = resolver.analysis.module_scope().bindings.get(name, [])
            if len(bindings) != 1:
                return None
            b = bindings[0]
            if b.kind == "class":
                return resolver.class_kind(b.node)  # type: ignore[arg-type]
            if b.kind == "import":
                return resolver.imported(b.qname or "")
            if b.kind == "assign" and not b.path and b.value is not None:
                return resolver.kind_of(b.value)
            return None
        finally:
            self._active.discard(key)

    def registry_kind(self, qname: str, importing: str | None) -> Kind | None:
        """The unified kind of the values of a module-level dict literal (`MODEL_CLASSES = {...}`) defined in a
        file of the project."""
        module, _, name = qname.rpartition(".")
        path = self.module_file(module, importing) if module else None
        resolver = self.resolver(path) if path is not None else None
        key = (str(path), name)
        if resolver is None or key in self._active:
            return None
        self._active.add(key)
        try:
            return resolver.registry_kind(name)
        finally:
            self._active.discard(key)


def _drop_function_bodies(body: list[ast.stmt]) -> None:
    """What another file is asked for lives at module level and in class bodies (classes, their bases, methods'
    signatures, registries): function bodies are replaced by `...` before that file is indexed, which is most of
    its nodes. Module-level `if`/`try` blocks (import fallbacks, guarded definitions) are kept."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = stmt.body[0]
            stmt.body = [ast.copy_location(ast.Expr(ast.copy_location(ast.Constant(...), first)), first)]
        elif isinstance(stmt, ast.ClassDef):
            _drop_function_bodies(stmt.body)
        else:
            for block in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, block, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    _drop_function_bodies(inner)
            for handler in getattr(stmt, "handlers", ()):
                _drop_function_bodies(handler.body)


def _module_at(base: Path, dotted: str) -> Path | None:
    if not dotted:
        init = base / "__init__.py"
        return init if init.is_file() else None
    parts = dotted.split(".")
    candidate = base.joinpath(*parts)
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path.resolve()
    return None
