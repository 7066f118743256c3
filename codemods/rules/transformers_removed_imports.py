"""transformers-removed-imports: names transformers removed, moved to what replaces them.

- `transformers.AdamW` (and `transformers.optimization.AdamW`), removed in 4.50 -> `torch.optim.AdamW`. The
  defaults differ (transformers: `eps=1e-6, weight_decay=0.0`; torch: `eps=1e-8, weight_decay=0.01`), so every call
  that relied on them gets them written out; `correct_bias=True` and `no_deprecation_warning=` go. A use the rewrite
  cannot carry over (`correct_bias=False`: torch has no such option; a `**` dict; the class passed as a value) leaves
  that whole import as it is, with a TODO at the use.
- `is_torch_tpu_available`, removed in 4.51 -> `is_torch_xla_available` (its `check_device=` argument dropped). A
  function of the old name is back in `transformers.utils` from 5.9, but it tests a native torch TPU device, not
  torch_xla: the rename keeps the XLA meaning.
- the module `transformers.deepspeed`, removed in 4.46 -> `transformers.integrations.deepspeed` (imports and
  attribute chains).
- `TextDataset`, `LineByLineTextDataset` and the other legacy dataset classes (gone in 5.0) and
  `top_k_top_p_filtering` have no replacement: their imports are reported.
Every replacement exists on every supported version (the compat floor).
"""

from __future__ import annotations

import ast
import re

import libcst as cst

from codemods import cstutil
from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule
from codemods.rules._keywords import keyword

ADAMW_MODULES = ("transformers", "transformers.optimization")
TPU_MODULES = ("transformers", "transformers.utils", "transformers.utils.import_utils", "transformers.file_utils")
OLD_TPU, NEW_TPU = "is_torch_tpu_available", "is_torch_xla_available"
OLD_DS, NEW_DS = "transformers.deepspeed", "transformers.integrations.deepspeed"
NO_REPLACEMENT = frozenset(
    {
        "TextDataset", "LineByLineTextDataset", "LineByLineWithRefDataset", "LineByLineWithSOPTextDataset",
        "TextDatasetForNextSentencePrediction", "GlueDataset", "SquadDataset", "GlueDataTrainingArguments",
        "SquadDataTrainingArguments", "DataCollatorForSOP", "top_k_top_p_filtering",
    }
)  # fmt: skip
ADAMW_DEFAULTS = (("eps", "1e-6", 3), ("weight_decay", "0.0", 4))  # keyword, transformers' default, position
ADAMW_DROPPED = ("no_deprecation_warning",)


class TransformersRemovedImports(Rule):
    id = "transformers-removed-imports"
    summary = "transformers.AdamW -> torch.optim.AdamW (same defaults), is_torch_tpu_available, transformers.deepspeed"
    triggers = ("AdamW", OLD_TPU, "deepspeed", *sorted(NO_REPLACEMENT))
    trigger_regex = re.compile(
        r"\btransformers\.(?:deepspeed|(?:optimization\.)?AdamW)\b|\bis_torch_tpu_available\b"
        r"|\bfrom[ \t]+transformers(?:\.optimization)?[ \t]+import[ \t]*(?:\([^)]*|[^\n]*)\b(?:AdamW|"
        + "|".join(sorted(NO_REPLACEMENT))
        + r")\b"
    )
    gates = (COMPAT_FLOOR_GATE,)

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        a = ctx.analysis
        for item in a.absolute_imports():
            if isinstance(item, ast.ImportFrom):
                self.import_from(item)
            elif item.name == OLD_DS or item.name.startswith(OLD_DS + "."):
                new = NEW_DS + item.name[len(OLD_DS) :]
                ctx.edit(item, lambda al, new=new: al.with_changes(name=cst.parse_expression(new)),
                         f"import {item.name} -> {new}")  # fmt: skip
        for node in a.attributes.get("deepspeed", ()):
            if a.qualified_name(node) == OLD_DS and not _in_import(a, node):
                ctx.edit(
                    node,
                    lambda at: at.with_changes(value=cst.Attribute(value=at.value, attr=cst.Name("integrations"))),
                    "transformers.deepspeed -> transformers.integrations.deepspeed",
                )
        for node in a.attributes.get("AdamW", ()):
            if a.qualified_name(node) in {f"{m}.AdamW" for m in ADAMW_MODULES}:
                self.adamw_attribute(node)
        for node in a.attributes.get(OLD_TPU, ()):
            if a.qualified_name(node) in {f"{m}.{OLD_TPU}" for m in TPU_MODULES}:
                ctx.rename_attribute(node, NEW_TPU)
                self.tpu_call(node)

    # ------------------------------------------------------------------ from X import ...
    def import_from(self, stmt: ast.ImportFrom) -> None:
        ctx = self.ctx
        module = stmt.module or ""
        if module == OLD_DS or module.startswith(OLD_DS + "."):
            new = NEW_DS + module[len(OLD_DS) :]
            ctx.edit(stmt, lambda s: s.with_changes(module=cst.parse_expression(new)), f"from {module} -> {new}")
            return
        if module not in TPU_MODULES and module not in ADAMW_MODULES:
            return
        gone = [al.name for al in stmt.names if module == "transformers" and al.name in NO_REPLACEMENT]
        if gone:
            ctx.diagnose(
                stmt,
                f"{', '.join(gone)}: removed from transformers, no replacement (use the datasets library)",
                "removed from transformers with no replacement",
            )
        for alias in stmt.names:
            if alias.name == "AdamW" and module in ADAMW_MODULES:
                self.adamw_import(stmt, alias)
            elif alias.name == OLD_TPU and module in TPU_MODULES:
                self.tpu_import(alias)

    # ------------------------------------------------------------------ is_torch_tpu_available
    def tpu_import(self, alias: ast.alias) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        binding = a.binding_for(alias)
        loads = a.loads(binding) if binding is not None else []
        if alias.asname is None and any(len(a.reaching(load)) > 1 for load in loads):
            ctx.todo(loads[0], f"{OLD_TPU} also names something else here; use {NEW_TPU} by hand")
            return
        ctx.edit(alias, lambda al: al.with_changes(name=cst.Name(NEW_TPU)), f"import {OLD_TPU} -> {NEW_TPU}")
        for load in loads:
            if alias.asname is None:
                ctx.edit(load, lambda n: n.with_changes(value=NEW_TPU), f"{OLD_TPU} -> {NEW_TPU}", counted=False)
            self.tpu_call(load)

    def tpu_call(self, node: ast.AST) -> None:
        call = self.ctx.analysis.parent(node)
        if isinstance(call, ast.Call) and call.func is node and (call.args or call.keywords):
            self.ctx.edit(call, lambda c: c.with_changes(args=[]), f"{NEW_TPU}(): check_device= dropped")

    # ------------------------------------------------------------------ AdamW
    def adamw_import(self, stmt: ast.ImportFrom, alias: ast.alias) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        binding = a.binding_for(alias)
        if binding is None:
            return
        loads = a.loads(binding)
        if any(len(a.reaching(load)) > 1 for load in loads):
            return  # `try: from transformers import AdamW` / `except ImportError: from torch.optim import AdamW`
        calls = self.adamw_calls(loads)
        if calls is None:
            return
        for call in calls:
            ctx.edit(call, self.adamw_args(call), "AdamW(...): transformers' defaults written out", drops=(call.func,))
        ctx.remove_import(alias)
        name = "AdamW" if alias.asname is None else f"AdamW as {alias.asname}"
        ctx.insert_before(stmt, f"from torch.optim import {name}", "from transformers import AdamW -> torch.optim")

    def adamw_attribute(self, node: ast.Attribute) -> None:
        ctx = self.ctx
        calls = self.adamw_calls([node])
        if not calls:
            return
        call = calls[0]
        args_fn = self.adamw_args(call)
        ctx.edit(call, lambda c: args_fn(c).with_changes(func=cst.parse_expression("torch.optim.AdamW")),
                 "transformers.AdamW(...) -> torch.optim.AdamW(...)")  # fmt: skip
        ctx.add_import("torch")

    def adamw_calls(self, uses: list[ast.AST]) -> list[ast.Call] | None:
        """The calls of every use, or None (with a TODO at the first use that cannot be carried over)."""
        ctx, a = self.ctx, self.ctx.analysis
        calls = []
        for use in uses:
            call = a.parent(use)
            if not (isinstance(call, ast.Call) and call.func is use):
                ctx.todo(use, "transformers' AdamW used as a value: torch.optim.AdamW has other defaults")
                return None
            why = self.adamw_blocker(call)
            if why is not None:
                ctx.todo(call, why)
                return None
            calls.append(call)
        return calls

    def adamw_blocker(self, call: ast.Call) -> str | None:
        if any(isinstance(x, ast.Starred) for x in call.args) or any(k.arg is None for k in call.keywords):
            return "AdamW(**...): write eps=1e-6, weight_decay=0.0 for torch.optim.AdamW by hand"
        if len(call.args) > 5:
            return "positional correct_bias: torch AdamW has no correct_bias"
        bias = keyword(call, "correct_bias")
        if bias is not None and not (isinstance(bias.value, ast.Constant) and bias.value.value is True):
            return "torch AdamW has no correct_bias=False"
        return None

    def adamw_args(self, call: ast.Call):
        missing = [(k, v) for k, v, pos in ADAMW_DEFAULTS if keyword(call, k) is None and len(call.args) <= pos]

        def fn(node: cst.Call) -> cst.Call:
            drop = {
                i
                for i, arg in enumerate(node.args)
                if arg.keyword is not None and arg.keyword.value in (*ADAMW_DROPPED, "correct_bias")
            }
            args = cstutil.without_args(node.args, drop)
            start = len(args)
            args += [cstutil.kwarg(k, cst.parse_expression(v)) for k, v in missing]
            inserted = frozenset(range(start, len(args)))
            return node.with_changes(args=cstutil.with_commas(args, args[:start] or node.args, inserted))

        return fn


def _in_import(a, node: ast.AST) -> bool:
    return isinstance(a.statement_of(node), (ast.Import, ast.ImportFrom))
