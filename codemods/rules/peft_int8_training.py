"""peft-int8-training: `prepare_model_for_int8_training` (removed in peft 0.10) -> `prepare_model_for_kbit_training`.

Signatures: peft 0.2 `(model, output_embedding_layer_name="lm_head", use_gradient_checkpointing=True,
layer_norm_names=["layer_norm"])`; 0.3 `(model, use_gradient_checkpointing=True)`; 0.4-0.9 `(*args, **kwargs)`
forwarding to `prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
gradient_checkpointing_kwargs=None)`. Keywords the new function lacks are dropped with a TODO.

Imports are renamed in place (`from peft import prepare_model_for_int8_training [as x]` -> `from peft import
prepare_model_for_kbit_training`) once every use of that name was rewritten; a name with a use left alone (TODO)
keeps its import; `import int8 as kbit` (a fallback alias) always becomes the plain new import, and fallbacks whose
branches then import the same thing collapse.
"""

from __future__ import annotations

import ast

import libcst as cst

from codemods.analysis import string_value
from codemods.cstutil import as_keyword, with_commas
from codemods.rule import FileContext
from codemods.rules._function import FunctionRule, bound_args, imports_module

NEW = "prepare_model_for_kbit_training"
OLD = "prepare_model_for_int8_training"
MODULES = ("peft", "peft.utils", "peft.utils.other")
_OLD_PARAMS = (
    "model",
    "output_embedding_layer_name",
    "use_gradient_checkpointing",
    "layer_norm_names",
)
_NEW_PARAMS = ("model", "use_gradient_checkpointing", "gradient_checkpointing_kwargs")
_DROPPED = ("output_embedding_layer_name", "layer_norm_names")


class PeftInt8Training(FunctionRule):
    id = "peft-int8-training"
    summary = "peft's prepare_model_for_int8_training (removed in 0.10) -> prepare_model_for_kbit_training"
    triggers = (OLD,)
    trigger_regex = imports_module("peft")
    gates = ("kbit_training_function",)
    old_modules = MODULES
    old_name = OLD
    origin = "peft's"

    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        self.ctx = ctx
        self.new_names = frozenset(f"{m}.{NEW}" for m in MODULES)
        rewritten: set[int] = set()  # ids of import bindings whose uses were rewritten
        blocked: set[int] = set()  # ids of import bindings with a use left alone: their import stays
        for node in self.references(ctx):
            kind = self.kind(node)
            if kind == "none" or a.in_fstring(node):
                continue
            parent = a.parent(node)
            bindings = a.reaching(node) if isinstance(node, ast.Name) else ()
            is_call = isinstance(parent, ast.Call) and parent.func is node
            if kind == "ambiguous":
                if is_call:
                    ctx.todo(parent, "two objects share this name here; rewrite by hand")
                blocked.update(id(b) for b in bindings)
                continue
            callee = self._new_callee(ctx, node, bindings, rewritten, blocked)
            if callee is False:
                continue
            if not is_call:
                if callee is not None:
                    ctx.edit(node, callee, f"reference to {a.text(node)}")
                continue
            fn = self._call_fn(ctx, parent, callee)
            if fn is not None:
                ctx.edit(parent, fn, f"{a.text(node)}(...)")
        self._imports(ctx, rewritten, blocked)

    def kind(self, node: ast.AST) -> str:
        a = self.ctx.analysis
        old = self.old()
        if isinstance(node, ast.Attribute):
            return "old" if a.qualified_name(node) in old else "none"
        found = a.reaching(node)  # type: ignore[arg-type]
        if not found:
            star = a.star_module(node)  # type: ignore[arg-type]
            return "old" if star is not None and f"{star}.{node.id}" in old else "none"  # type: ignore[attr-defined]
        if not any(b.kind == "import" and b.qname in old for b in found):
            return "none"
        ok = all(b.kind == "import" and (b.qname in old or b.qname in self.new_names) for b in found)
        return "old" if ok else "ambiguous"

    def _new_callee(self, ctx, node, bindings, rewritten, blocked):
        """An edit function for the callee, None when it already has the new name, False when it must stay."""
        if isinstance(node, ast.Attribute):
            return lambda n: n.with_changes(attr=cst.Name(NEW))
        if node.id == NEW:
            return None  # a fallback alias already spells the new name
        for b in ctx.analysis.resolve(NEW, ctx.analysis.scope_of(node)):
            if b.kind != "import":
                blocked.update(id(x) for x in bindings)
                ctx.todo(node, f"`{NEW}` is taken here; rename by hand")
                return False
        rewritten.update(id(b) for b in bindings)
        return lambda n: cst.Name(NEW)

    def _call_fn(self, ctx, call: ast.Call, callee):
        positional = [x for x in call.args if not isinstance(x, ast.Starred)]
        second = positional[1] if len(positional) > 1 else None
        if second is not None and string_value(second) is not None:
            params = _OLD_PARAMS + ("gradient_checkpointing_kwargs",)  # peft 0.2's positional order
        else:
            params = _NEW_PARAMS + _DROPPED
        bound = bound_args(call, params)
        dropped = sorted((i, n) for n, i in (bound or {}).items() if n in _DROPPED)
        if dropped:
            ctx.todo(
                call,
                f"dropped {', '.join(n for _, n in dropped)}: no longer a parameter",
            )
        if callee is None and not dropped:
            return None
        names = {i: n for n, i in (bound or {}).items()}
        drop = {i for i, _ in dropped}

        def fn(node: cst.Call) -> cst.Call:
            new = node
            if callee is not None:
                new = new.with_changes(func=callee(new.func))
            if drop:
                kept = []
                after_drop = False
                for i, arg in enumerate(new.args):
                    if i in drop:
                        after_drop = True
                        continue
                    if arg.keyword is None and after_drop:
                        arg = as_keyword(arg, names[i])  # a positional after a dropped one
                    kept.append(arg)
                new = new.with_changes(args=with_commas(kept, new.args))
            return new

        return fn

    # ------------------------------------------------------------------ imports, renamed in place
    def _imports(self, ctx: FileContext, rewritten: set[int], blocked: set[int]) -> None:
        a = ctx.analysis
        for stmt in a.imports:
            if not isinstance(stmt, ast.ImportFrom) or stmt.level or stmt.module not in MODULES:
                continue
            if any(al.name == "*" for al in stmt.names):
                continue
            actions: dict[int, str] = {}
            alias_rewrite = False
            have_new = any(al.name == NEW and al.asname is None for al in stmt.names)
            for i, alias in enumerate(stmt.names):
                b = a.binding_for(alias)
                used = b is not None and id(b) in rewritten and id(b) not in blocked
                rename = False
                if alias.name == OLD and alias.asname == NEW:
                    rename, alias_rewrite = True, True
                elif used and (alias.name == OLD or (alias.name == NEW and alias.asname == OLD)):
                    rename = True
                if rename:
                    actions[i] = "drop" if have_new else "rename"
                    have_new = True
            if not actions:
                continue
            if ctx.is_skipped(stmt):
                if any(v == "rename" for v in actions.values()) and not alias_rewrite:
                    ctx.add_import("peft", NEW)
                continue
            fn = _renamed_imports(actions)
            if alias_rewrite:
                ctx.edit(stmt, fn, f"import {OLD} as {NEW} -> import {NEW}", collapse=True)
            else:
                ctx.edit(stmt, fn, "import renamed", collapse=True, counted=False)


def _renamed_imports(actions: dict[int, str]):
    def fn(node: cst.ImportFrom) -> cst.ImportFrom:
        names = []
        for i, alias in enumerate(node.names):
            action = actions.get(i)
            if action == "drop":
                continue
            if action == "rename":
                alias = alias.with_changes(name=cst.Name(NEW), asname=None)
            names.append(alias)
        if names and isinstance(names[-1].comma, cst.Comma) and node.rpar is None:
            names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return node.with_changes(names=names)

    return fn
