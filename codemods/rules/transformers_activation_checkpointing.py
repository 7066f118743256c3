"""transformers-activation-checkpointing: the `gradient_checkpointing*` names -> `activation_checkpointing*`.

transformers 5.23 renamed them; the old names stay as aliases that emit a FutureWarning and go in v6 (gate
`activation_checkpointing_names`: the new names do not exist before).

Rewritten:
- model methods: `m.gradient_checkpointing_enable(gradient_checkpointing_kwargs=...)` ->
  `m.activation_checkpointing_enable(activation_checkpointing_kwargs=...)`, `m.gradient_checkpointing_disable()`
  -> `m.activation_checkpointing_disable()`, `m.is_gradient_checkpointing` -> `m.is_activation_checkpointing`, where
  `m` is known to be a transformers/peft model at that point (codemods.kinds: loaded from a model class, wrapped by
  `get_peft_model`/`torch.compile`/..., annotated, `trainer.model`, `self.model` in a Trainer subclass).
- `TrainingArguments`/`Seq2SeqTrainingArguments`/TRL configs (and the user's subclasses of them): the keywords
  `gradient_checkpointing=`/`gradient_checkpointing_kwargs=` (also in `dataclasses.replace(args, ...)`,
  `args.set_training(...)` and the keys of a same-scope dict passed with `**`), and attribute reads/writes on an
  object known to be one.
Left alone: `self.`/`cls.`/`super()` calls, a class's own methods and user functions with such parameters,
argparse namespaces, dataclass fields, strings, comments, `getattr`. Reported (diagnostics): receivers of unknown
type in files that import transformers/trl/peft (diffusers' ModelMixin has `is_gradient_checkpointing` too,
sentence-transformers and user classes their own `gradient_checkpointing_enable`: a guess could break working code).
"""

from __future__ import annotations

import ast
import re

from codemods import hf
from codemods.rule import FileContext, Rule
from codemods.rules._keywords import IMPORTS_HF, Renamer, keyword

METHODS = {
    "gradient_checkpointing_enable": "activation_checkpointing_enable",
    "gradient_checkpointing_disable": "activation_checkpointing_disable",
}
PROPERTY = ("is_gradient_checkpointing", "is_activation_checkpointing")
FIELDS = {
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}
# Names that are TrainingArguments/TRL configs in practice (`training_args`, `args`, `sft_config`); a vaguer `cfg` or
# `config` is most often the project's own config object, where a diagnostic would only be noise.
_ARGS_LIKE = re.compile(
    r"(?:^|[._])(?:\w*_)?(?:args|arguments|(?:sft|dpo|grpo|kto|orpo|trl|training|train)_?(?:config|cfg))$",
    re.I,
)


class TransformersActivationCheckpointing(Rule):
    id = "transformers-activation-checkpointing"
    summary = "gradient_checkpointing* -> activation_checkpointing* (model methods, TrainingArguments/TRL configs)"
    triggers = ("gradient_checkpointing",)
    gates = ("activation_checkpointing_names",)

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        return _actionable_shape(source)

    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        self.ctx = ctx
        self.hf_file = IMPORTS_HF.search(ctx.source) is not None
        self.renamer = Renamer(ctx, FIELDS, self.is_sink, "gradient_checkpointing*")
        for method in METHODS:
            for call in a.calls_by_attr.get(method, ()):
                self.plan_method(call)
        seen: set[int] = set()
        for field_name in FIELDS:
            for kw in a.keywords.get(field_name, ()):
                call = a.call_of_keyword(kw)
                if call is not None and id(call) not in seen:
                    seen.add(id(call))
                    self.plan_args_call(call)
        for call in a.calls:
            if id(call) not in seen and any(k.arg is None for k in call.keywords):
                self.plan_args_call(call)
        for node in a.attributes.get(PROPERTY[0], ()):
            self.plan_property(node)
        for field_name in FIELDS:
            for node in a.attributes.get(field_name, ()):
                self.plan_field(node)

    # ------------------------------------------------------------------ receivers
    def model_receiver(self, recv: ast.AST, name: str) -> str:
        """ "yes" (a transformers/peft model), "override" (its class overrides gradient_checkpointing_enable the old
        way), "no" (self/cls/super(), a known non-model) or "ambiguous" (unknown)."""
        if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
            return "no"
        if isinstance(recv, ast.Call) and isinstance(recv.func, ast.Name) and recv.func.id == "super":
            return "no"
        kind = self.ctx.kinds.kind_of(recv)
        if kind is not None:
            if kind.what == "model" and kind.old_override and name == "gradient_checkpointing_enable":
                return "override"
            return "yes" if kind.what == "model" else "no"
        return "ambiguous"

    def args_receiver(self, recv: ast.AST) -> bool:
        kind = self.ctx.kinds.kind_of(recv)
        return kind is not None and kind.what == "args"

    # ------------------------------------------------------------------ plan
    def plan_method(self, call: ast.Call) -> None:
        ctx = self.ctx
        func = call.func
        assert isinstance(func, ast.Attribute)
        old = func.attr
        verdict = self.model_receiver(func.value, old)
        if ctx.analysis.in_fstring(call):
            return
        if verdict == "yes":
            ctx.rename_attribute(func, METHODS[old], f"{old} -> {METHODS[old]}")
            kw = keyword(call, "gradient_checkpointing_kwargs")
            if kw is not None and keyword(call, "activation_checkpointing_kwargs") is None:
                ctx.rename_keyword(kw, "activation_checkpointing_kwargs")
        elif verdict == "override":
            ctx.todo(call, "its class's override lacks **kwargs; add them")
        elif verdict == "ambiguous":
            ctx.diagnose(
                call,
                f"unknown receiver: if a transformers model (>= 5.23), call {METHODS[old]}()",
                "unknown receiver; rename if a transformers model",
            )

    def plan_args_call(self, call: ast.Call) -> None:
        ctx = self.ctx
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "set_training":
            if self.args_receiver(func.value):
                self.renamer.keywords(call)
            return
        kind = ctx.kinds.kind_of(func)
        if kind is None or kind.what != "ref":
            return
        if hf.is_training_args_class(kind.qname):
            self.renamer.keywords(call)
            self.renamer.stars(call)
        elif kind.qname == "dataclasses.replace" and call.args and self.args_receiver(call.args[0]):
            self.renamer.keywords(call)

    def plan_property(self, node: ast.Attribute) -> None:
        ctx = self.ctx
        if not isinstance(node.ctx, ast.Load):
            return
        verdict = self.model_receiver(node.value, PROPERTY[0])
        if verdict == "yes" and not ctx.analysis.in_fstring(node):
            ctx.rename_attribute(node, PROPERTY[1], f"{PROPERTY[0]} -> {PROPERTY[1]}")
        elif verdict == "ambiguous":
            ctx.diagnose(
                node,
                f"unknown receiver: if a transformers model (>= 5.23), read {PROPERTY[1]}",
                "unknown receiver; rename if a transformers model",
            )

    def plan_field(self, node: ast.Attribute) -> None:
        ctx = self.ctx
        attr = node.attr
        recv = node.value
        if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
            return
        if self.args_receiver(recv):
            if not ctx.analysis.in_fstring(node):
                ctx.rename_attribute(node, FIELDS[attr], f"{attr} -> {FIELDS[attr]}")
            return
        if self.hf_file and ctx.kinds.kind_of(recv) is None:
            text = ctx.analysis.text(recv)
            if _ARGS_LIKE.search(text):
                ctx.diagnose(
                    node,
                    f"if {text[:20]} is a TrainingArguments/TRL config (>= 5.23), use .{FIELDS[attr]}",
                    "if a TrainingArguments: rename to the new field",
                )

    def is_sink(self, use: ast.AST, container: ast.AST) -> bool | None:
        if isinstance(use, ast.keyword) and use.arg is None and isinstance(container, ast.Call):
            kind = self.ctx.kinds.kind_of(container.func)
            if kind is not None and kind.what == "ref" and hf.is_training_args_class(kind.qname):
                return True
        return None


_NAME = re.compile(r"gradient_checkpointing(?:_enable|_disable|_kwargs)?\b")
_ASSIGN_AFTER = re.compile(r"[ \t]*=(?!=)")


def _actionable_shape(source: str) -> bool:
    """A text shape this rule can act on: `.gradient_checkpointing_enable/_disable`, `.is_gradient_checkpointing`,
    `x.gradient_checkpointing(_kwargs)` on something else than `self`, a `gradient_checkpointing(_kwargs)=` keyword,
    or a quoted key. Model code (`self.gradient_checkpointing and self.training`) has none. A literal-prefix scan
    plus a look at the neighbours: a regex with look-behinds at the front is ~50x slower on transformers' tree."""
    for m in _NAME.finditer(source):
        start, end = m.start(), m.end()
        is_prop = source.startswith("is_", start - 3)
        before = source[start - 4 if is_prop else start - 1 : start - 3 if is_prop else start]
        name = m.group()
        if name.endswith(("_enable", "_disable")) or is_prop:
            if before == ".":
                return True
            continue
        if before == ".":
            if not source.startswith("self", start - 5 if start >= 5 else 0) or (
                start >= 6 and (source[start - 6].isalnum() or source[start - 6] in "_.")
            ):
                return True
            continue
        if before in ("'", '"'):
            if source.startswith(before, end):
                return True
            continue
        if not (before.isalnum() or before == "_") and _ASSIGN_AFTER.match(source, end):
            return True
    return False
