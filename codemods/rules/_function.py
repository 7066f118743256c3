"""Shared machinery of the rules that replace one imported function (a TRL or peft helper) by another call.

A `FunctionRule` knows the modules the old function was importable from; it finds every reference whose bindings
ALL resolve to one of those (any import form: aliases, multi-name and parenthesised imports, function-local imports,
`import trl.models.utils as U`, fully qualified `trl.trainer.peft_module_casting_to_bf16`, a name only a star import
of the old module provides), rewrites calls with `rewrite_call`, other references with `rewrite_reference`, and asks
for the old imports to be removed (the engine removes them only when nothing uses them any more; emptied try/except
and if/else fallbacks are collapsed). A name that resolves to the old function *and* to something else (e.g. a
fallback that assigns None) is left alone with a TODO comment.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import ClassVar

import libcst as cst

from codemods import cstutil
from codemods.edits import CstFn
from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule

COMPAT = "compat"
TRL_HELPER_MODULES = ("trl.models", "trl.models.utils", "trl.experimental.utils")  # where TRL 0.22-0.29 kept them


def imports_module(package: str) -> re.Pattern[str]:
    """Pre-filter regex: the file has an import statement of `package` (any form, also indented or after `;`).
    A rule that resolves names through imports cannot apply to a file without one."""
    p = re.escape(package)
    return re.compile(
        rf"(?:^|;)[ \t]*(?:from[ \t]+{p}\b|import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*{p}\b)",
        re.MULTILINE,
    )


def bound_args(call: ast.Call, params: Sequence[str]) -> dict[str, int] | None:
    """Map the call's arguments to parameter names (value: the index of the argument in libcst order: positional
    first, then keywords, as written); None when there is `*x`/`**x` or an unknown keyword."""
    out: dict[str, int] = {}
    items = _in_order(call)
    for i, item in enumerate(items):
        if isinstance(item, ast.Starred) or (isinstance(item, ast.keyword) and item.arg is None):
            return None
        if isinstance(item, ast.keyword):
            if item.arg not in params or item.arg in out:
                return None
            out[item.arg] = i
        else:
            if i >= len(params):
                return None
            out[params[i]] = i
    return out


def _in_order(call: ast.Call) -> list[ast.AST]:
    return sorted([*call.args, *call.keywords], key=lambda n: (n.lineno, n.col_offset))


class FunctionRule(Rule):
    """Base for "old helper -> new call" rules. Subclasses set `old_modules`/`old_name` and implement
    `rewrite_call` (return an edit function for the libcst Call, or None after calling `ctx.todo`)."""

    old_modules: ClassVar[tuple[str, ...]] = ()
    old_name: ClassVar[str] = ""
    origin: ClassVar[str] = "TRL's"  # for messages

    @classmethod
    def old(cls) -> frozenset[str]:
        return frozenset(f"{m}.{cls.old_name}" for m in cls.old_modules)

    def _module_prefix(self, name: str) -> bool:
        return any(m == name or m.startswith(name + ".") for m in self.old_modules)

    # ------------------------------------------------------------------ the pass
    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        old = self.old()
        self.ctx = ctx
        for node in a.imports:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if self._module_prefix(alias.name):
                        ctx.remove_import(alias)
            elif not node.level and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in old or self._module_prefix(full):
                        ctx.remove_import(alias)
        references = self.references(ctx)
        for node in references:
            kind = self.kind(node)
            if kind == "none" or a.in_fstring(node):
                continue
            parent = a.parent(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                continue  # `helper.__name__`: not a use of the function
            if isinstance(parent, ast.Call) and parent.func is node:
                if kind == "ambiguous":
                    ctx.todo(parent, "two objects share this name here; rewrite by hand")
                    continue
                fn = self.rewrite_call(ctx, parent)
                if fn is not None:
                    ctx.edit(
                        parent,
                        fn,
                        f"{a.text(node)}(...)",
                        exclusive=True,
                        drops=(node,),
                    )
            elif kind == "old":
                fn = self.rewrite_reference(ctx, node)
                if fn is not None:
                    ctx.edit(
                        node,
                        fn,
                        f"reference to {a.text(node)}",
                        exclusive=True,
                        drops=(node,),
                    )

    def references(self, ctx: FileContext) -> list[ast.AST]:
        """Loads that may be the old function: its name, the local names of its imports (aliases), attributes."""
        a = ctx.analysis
        old = self.old()
        local_names = {self.old_name}
        for node in a.imports:
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in old:
                        local_names.add(alias.asname or alias.name)
        refs: list[ast.AST] = [n for name in local_names for n in a.names.get(name, ()) if isinstance(n.ctx, ast.Load)]
        refs += [n for n in a.attributes.get(self.old_name, ()) if isinstance(n.ctx, ast.Load)]
        return sorted(refs, key=lambda n: (n.lineno, n.col_offset))

    def kind(self, node: ast.AST) -> str:
        """ "old" (every binding is the old helper), "ambiguous" (some are), "none"."""
        a = self.ctx.analysis
        old = self.old()
        if isinstance(node, ast.Attribute):
            qname = a.qualified_name(node)
            return "old" if qname in old else "none"
        assert isinstance(node, ast.Name)
        found = a.reaching(node)
        if not found:
            star = a.star_module(node)
            return "old" if star is not None and f"{star}.{node.id}" in old else "none"
        hits = [b for b in found if b.kind == "import" and b.qname in old]
        if not hits:
            return "none"
        return "old" if len(hits) == len(found) else "ambiguous"

    # ------------------------------------------------------------------ helpers for subclasses
    def compat_callee(self, ctx: FileContext, node: ast.AST, name: str) -> cst.Attribute | None:
        """`compat.<name>` (asking for `import compat`), or None with a TODO when `compat` is another object in this
        scope."""
        for b in ctx.analysis.resolve(COMPAT, ctx.analysis.scope_of(node)):
            plain = (
                b.kind == "import"
                and isinstance(b.statement, ast.Import)
                and any(al.name == COMPAT and al.asname is None for al in b.statement.names)
            )
            if not plain:
                ctx.todo(node, f"`{COMPAT}` names another object here; rewrite by hand")
                return None
        ctx.add_import(COMPAT)
        return cstutil.attr(COMPAT, name)

    def fitted(self, ctx: FileContext, call: ast.Call, fn: CstFn) -> CstFn:
        """`fn`, then one argument per line if the rewrite pushed a one-line call past the line length."""
        line = ctx.text.line(call.lineno)
        old_code = ctx.analysis.segment(call)
        indent = ctx.text.indent_unit

        def wrapped(node):
            new = fn(node)
            return cstutil.fit(line, old_code, new, indent) if isinstance(new, cst.Call) else new

        return wrapped

    def mentions(self, ctx: FileContext, text: str) -> bool:
        return text in ctx.source

    # ------------------------------------------------------------------ to implement
    def rewrite_call(self, ctx: FileContext, call: ast.Call) -> CstFn | None:
        raise NotImplementedError

    def rewrite_reference(self, ctx: FileContext, node: ast.AST) -> CstFn | None:
        """A use that is not a call (passed as a value, aliased). Default: leave it, with a TODO."""
        ctx.todo(node, "used as a value, not called: replace it by hand")
        return None


class TrlHelperRule(FunctionRule):
    """A TRL helper that `compat` replaces (the rewritten code needs the stack compat supports).

    `new_name`: the compat function; `params`: the old signature; `arguments`: the new call's arguments, in order,
    as (keyword or None for positional, the old parameter it takes its value from or None, the default when the old
    call omits it or None to leave it out). Without `arguments`, the call keeps its arguments as they are."""

    trigger_regex = imports_module("trl")
    gates = (COMPAT_FLOOR_GATE,)
    old_modules = TRL_HELPER_MODULES
    new_name: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ("model",)
    arguments: ClassVar[tuple[tuple[str | None, str | None, str | None], ...]] = ()

    def rewrite_call(self, ctx: FileContext, call: ast.Call) -> CstFn | None:
        bound = bound_args(call, self.params)
        if bound is None or "model" not in bound:
            ctx.todo(call, "arguments not mapped: rewrite this call by hand")
            return None
        callee = self.compat_callee(ctx, call, self.new_name)
        if callee is None:
            return None
        self.notes(ctx, call)
        if not self.arguments:
            return lambda node: node.with_changes(func=callee)
        spec = self.arguments

        def fn(node: cst.Call) -> cst.Call:
            args, inserted = [], set()
            for keyword, old, default in spec:
                if old is not None and old in bound:
                    arg = node.args[bound[old]]
                    args.append(cstutil.as_keyword(arg, keyword) if keyword else arg)
                elif default is not None:
                    inserted.add(len(args))
                    args.append(cstutil.kwarg(keyword or "", cst.parse_expression(default)))
            return node.with_changes(func=callee, args=cstutil.with_commas(args, node.args, frozenset(inserted)))

        return self.fitted(ctx, call, fn)

    def rewrite_reference(self, ctx: FileContext, node: ast.AST) -> CstFn | None:
        if self.arguments:  # the signatures differ: a reference cannot simply point at the new function
            return super().rewrite_reference(ctx, node)
        callee = self.compat_callee(ctx, node, self.new_name)
        if callee is None:
            return None
        self.notes(ctx, node)
        return lambda _node: callee

    def notes(self, ctx: FileContext, node: ast.AST) -> None:
        """TODOs that go with every rewrite of this helper (none by default)."""
