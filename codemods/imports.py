"""Imports, fixed once per file after every rule planned its edits.

- Removals: an imported name a rule asked to remove goes when every load it reaches is dropped by some edit (and
  it is not in `__all__`): the alias alone from a multi-name import, else the whole statement; a try/except or
  if/else fallback left empty is collapsed (codemods.edits).
- Additions: `import compat`, `from transformers import BitsAndBytesConfig`... unless the name is already bound to
  that import; a name is added to an existing top-level `from module import ...` (in sorted position when the list
  is sorted); otherwise a new line goes after the last import of the module's leading import block that stays (or
  where the removed block was, or after the docstring).
"""

from __future__ import annotations

import ast

import libcst as cst

from codemods.analysis import string_value
from codemods.edits import Insert, NodeEdit, Removal
from codemods.rule import FileContext, ImportRequest

__all__ = ["finalize_imports"]


def finalize_imports(ctx: FileContext) -> None:
    """Turn the import requests of `ctx` into plan entries."""
    removed_statements = _removals(ctx)
    _additions(ctx, removed_statements)


# ---------------------------------------------------------------------------------------------- removals
def _dropped_ids(ctx: FileContext) -> set[int]:
    out: set[int] = set()
    for edit in ctx.plan.edits:
        for node in edit.drops:
            out.add(id(node))
    return out


def _is_dropped(ctx: FileContext, node: ast.AST, dropped: set[int]) -> bool:
    if id(node) in dropped:
        return True
    return any(id(a) in dropped for a in ctx.analysis.ancestors(node))


def _exported(ctx: FileContext) -> set[str]:
    names: set[str] = set()
    for b in ctx.analysis.module_scope().bindings.get("__all__", ()):
        if isinstance(b.value, (ast.List, ast.Tuple)):
            names.update(s for s in (string_value(e) for e in b.value.elts) if s)
    return names


def _removals(ctx: FileContext) -> set[int]:
    """Schedule the removals; returns the ids of statements removed whole."""
    if not ctx.import_removals:
        return set()
    a = ctx.analysis
    dropped = _dropped_ids(ctx)
    exported = _exported(ctx)
    by_statement: dict[int, tuple[ast.stmt, list[ast.alias]]] = {}
    seen: set[int] = set()
    rewriting = {f.rule for f in ctx.findings if f.kind == "rewrite"}
    for rule, alias in ctx.import_removals:
        if id(alias) in seen:
            continue
        seen.add(id(alias))
        stmt = a.parent(alias)
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)) or ctx.is_skipped(stmt):
            continue
        binding = a.binding_for(alias)
        if binding is None:
            continue
        if binding.scope.kind == "module" and binding.name in exported:
            continue
        loads = a.loads(binding)
        if any(not _is_dropped(ctx, load, dropped) for load in loads):
            continue
        if not loads and rule not in rewriting:
            continue  # unused already: not ours to remove unless the rule rewrites this file
        if ctx.analysis.shares_line(stmt):  # `import a; x = 1`: left to the user
            continue
        by_statement.setdefault(id(stmt), (stmt, []))[1].append(alias)
    whole: set[int] = set()
    for stmt, aliases in by_statement.values():
        if len(aliases) == len(stmt.names):
            ctx.plan.add_removal(Removal(stmt))
            whole.add(id(stmt))
        else:
            for alias in aliases:
                ctx.plan.add_removal(Removal(stmt, alias))
    return whole


# ---------------------------------------------------------------------------------------------- additions
def _additions(ctx: FileContext, removed: set[int]) -> None:
    if not ctx.import_requests:
        return
    done: set[tuple] = set()
    module_body = ctx.analysis.tree.body
    for req in ctx.import_requests:
        key = (
            req.module,
            req.name,
            req.asname,
            id(req.at) if req.at is not None else None,
        )
        if key in done:
            continue
        done.add(key)
        if _already_bound(ctx, req, removed):
            continue
        code = f"import {req.module}" if req.name is None else f"from {req.module} import {req.name}"
        if req.asname:
            code += f" as {req.asname}"
        if req.at is not None:
            ctx.plan.add_insert(Insert("imports", req.at, code, after=False, above_comments=True))
            continue
        if req.name is not None:
            target = _mergeable_from_import(ctx, req.module, removed)
            if target is not None:
                ctx.plan.add_edit(
                    NodeEdit(
                        "imports",
                        target,
                        _adding(req.name, req.asname),
                        f"import {req.name}",
                    )
                )
                continue
        anchor, after = _import_position(ctx, module_body, removed)
        if anchor is None:
            continue
        ctx.plan.add_insert(Insert("imports", anchor, code, after=after))


def _already_bound(ctx: FileContext, req: ImportRequest, removed: set[int]) -> bool:
    local = req.asname or (req.name if req.name is not None else req.module.split(".", 1)[0])
    qname = req.module if req.name is None else f"{req.module}.{req.name}"
    scope = ctx.analysis.scope_of(req.at) if req.at is not None else ctx.analysis.module_scope()
    for b in ctx.analysis.resolve(local, scope):
        if b.kind != "import" or id(b.statement) in removed:
            continue
        if req.name is None and b.qname == req.module.split(".", 1)[0] and isinstance(b.statement, ast.Import):
            if any(al.name == req.module for al in b.statement.names):
                return True
        if b.qname == qname:
            return True
    return False


def _mergeable_from_import(ctx: FileContext, module: str, removed: set[int]) -> ast.ImportFrom | None:
    for stmt in ctx.analysis.tree.body:
        if (
            isinstance(stmt, ast.ImportFrom)
            and stmt.module == module
            and not stmt.level
            and not any(a.name == "*" for a in stmt.names)
            and id(stmt) not in removed
            and not ctx.is_skipped(stmt)
            and not any(r.statement is stmt for r in ctx.plan.removals)
        ):
            return stmt
    return None


def _is_import_block_statement(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(stmt, (ast.Try, ast.If)):
        blocks = [stmt.body, stmt.orelse]
        if isinstance(stmt, ast.Try):
            blocks += [h.body for h in stmt.handlers] + [stmt.finalbody]
        return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)) or _is_import_block_statement(s)
                   for block in blocks for s in block)  # fmt: skip
    return False


def _import_position(ctx: FileContext, body: list[ast.stmt], removed: set[int]) -> tuple[ast.stmt | None, bool]:
    """(statement, after?) where a new top-level import goes."""
    start = 0
    if body and isinstance(body[0], ast.Expr) and string_value(body[0].value) is not None:
        start = 1  # the docstring
    block: list[ast.stmt] = []
    for stmt in body[start:]:
        if _is_import_block_statement(stmt):
            block.append(stmt)
        else:
            break
    remaining = [s for s in block if id(s) not in removed and not _emptied(ctx, s, removed)]
    if remaining:
        return remaining[-1], True
    if block:
        return block[0], False
    if start == 1:
        return body[0], True
    if body:
        return body[0], False
    return None, False


def _emptied(ctx: FileContext, stmt: ast.stmt, removed: set[int]) -> bool:
    """A try/if import fallback whose every import is removed (it will be collapsed away)."""
    if not isinstance(stmt, (ast.Try, ast.If)):
        return False
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in removed:
            return False
    return True


def _adding(name: str, asname: str | None):
    """fn for a libcst ImportFrom: add `name [as asname]` (sorted position when the names are sorted)."""

    def fn(node: cst.ImportFrom) -> cst.ImportFrom:
        if isinstance(node.names, cst.ImportStar):
            return node
        names = list(node.names)
        new = cst.ImportAlias(
            name=cst.Name(name),
            asname=cst.AsName(name=cst.Name(asname)) if asname else None,
        )
        keys = [cst.Module(body=[]).code_for_node(a.name) for a in names]
        position = len(names)
        if keys == sorted(keys):
            position = next((i for i, k in enumerate(keys) if k > name), len(names))
        if position == len(names):
            last = names[-1]
            sample = names[-2].comma if len(names) > 1 else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            trailing = last.comma
            names[-1] = last.with_changes(
                comma=sample if isinstance(sample, cst.Comma) else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            )
            names.append(new.with_changes(comma=trailing))
        else:
            after = names[position]
            comma = names[position - 1].comma if position > 0 else after.comma
            if not isinstance(comma, cst.Comma):
                comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            names.insert(position, new.with_changes(comma=comma))
        return node.with_changes(names=names)

    return fn
