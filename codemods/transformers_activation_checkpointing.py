"""transformers-activation-checkpointing: the `gradient_checkpointing*` names -> `activation_checkpointing*`.

transformers 5.23 renamed them; the old names stay as aliases that emit a FutureWarning and go in v6. Target gate:
transformers >= 5.23 (the new names do not exist before).

Rewritten:
- model methods: `m.gradient_checkpointing_enable(gradient_checkpointing_kwargs=...)` ->
  `m.activation_checkpointing_enable(activation_checkpointing_kwargs=...)`, `m.gradient_checkpointing_disable()`
  -> `m.activation_checkpointing_disable()`, `m.is_gradient_checkpointing` -> `m.is_activation_checkpointing`, when
  `m` is known to be a transformers/peft model in the same scope (`from_pretrained`/`from_config`, `get_peft_model`,
  `prepare_model_for_kbit_training`, `.to(...)` chains, a `PreTrainedModel`/model-class annotation, `trainer.model`,
  `self.model` in a Trainer subclass).
- `TrainingArguments`/`Seq2SeqTrainingArguments`/TRL configs (`SFTConfig`, `DPOConfig`, `GRPOConfig`, ...):
  the keywords `gradient_checkpointing=`/`gradient_checkpointing_kwargs=` (also in `dataclasses.replace(args, ...)`,
  `args.set_training(...)` and the keys of a same-scope dict passed with `**`), and attribute reads/writes on an
  object whose type is known in the same scope (constructor call, annotation, `HfArgumentParser`/`TrlParser`
  `parse_*` unpacking, `self.args` in a Trainer subclass, `trainer.args`).
Left alone: `self.`/`cls.`/`super()` calls, a class's own methods and user functions with such parameters,
argparse namespaces, dataclass fields, strings, comments, `getattr`; receivers of unknown type (a parameter, an
attribute): diffusers' ModelMixin has `is_gradient_checkpointing` too, sentence-transformers and user classes their own
`gradient_checkpointing_enable`, so a guess could break working code (a TODO with --strict, in files that import
transformers/trl/peft).
"""

from __future__ import annotations

import re

import libcst as cst

from codemods._hf import HF_ROOTS, HFRule, is_training_args_class, keyword_arg, literal_string, renamed_string

METHODS = {
    "gradient_checkpointing_enable": "activation_checkpointing_enable",
    "gradient_checkpointing_disable": "activation_checkpointing_disable",
}
PROPERTY = ("is_gradient_checkpointing", "is_activation_checkpointing")
FIELDS = {
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}
KEYS = frozenset(FIELDS)
_ARGS_LIKE = re.compile(r"arg|conf|cfg", re.I)


class TransformersActivationCheckpointing(HFRule):
    id = "transformers-activation-checkpointing"
    summary = "gradient_checkpointing* -> activation_checkpointing* (model methods, TrainingArguments/TRL configs)"
    triggers = ("gradient_checkpointing",)
    target = {"transformers": "5.23"}

    ast_key = "activation"

    @classmethod
    def could_apply(cls, source: str) -> bool:
        return _actionable_shape(source) and super().could_apply(source)

    # ------------------------------------------------------------------ receivers
    def model_receiver(self, recv: cst.BaseExpression, name: str) -> str:
        """ "yes" (a transformers/peft model), "no" (self/cls/super(), a known non-model) or "ambiguous" (unknown:
        a parameter, an attribute, a call result we cannot type; diffusers' ModelMixin has `is_gradient_checkpointing`
        too, sentence-transformers and user classes their own `gradient_checkpointing_enable`)."""
        if isinstance(recv, cst.Name) and recv.value in ("self", "cls"):
            return "no"
        if isinstance(recv, cst.Call) and isinstance(recv.func, cst.Name) and recv.func.value == "super":
            return "no"
        kind = self.kind_of(recv)
        if kind is not None:
            if kind.what == "model" and kind.old_override and name == "gradient_checkpointing_enable":
                return "override"
            return "yes" if kind.what == "model" else "no"
        return "ambiguous"

    def args_receiver(self, recv: cst.BaseExpression) -> bool:
        kind = self.kind_of(recv)
        return kind is not None and kind.what == "args"

    # ------------------------------------------------------------------ plan
    def plan(self, module: cst.Module) -> None:
        self._flows_done: set[tuple[int, str]] = set()
        for node in list(self.all_nodes()):
            if isinstance(node, cst.Call):
                self._plan_call(node)
            elif isinstance(node, cst.Attribute):
                self._plan_attribute(node)

    def _plan_call(self, call: cst.Call) -> None:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in METHODS:
            old = func.attr.value
            verdict = self.model_receiver(func.value, old)
            if verdict == "yes" and not self.in_fstring(call):
                new = METHODS[old]
                self.edit(func.attr, lambda n, new=new: n.with_changes(value=new), f"{old} -> {new}")
                kw = keyword_arg(call, "gradient_checkpointing_kwargs")
                if kw is not None and keyword_arg(call, "activation_checkpointing_kwargs") is None:
                    self.edit(
                        kw,
                        _rename_keyword("activation_checkpointing_kwargs"),
                        "gradient_checkpointing_kwargs= -> activation_checkpointing_kwargs=",
                    )
            elif verdict == "override":
                self.add_todo(
                    call,
                    "this model's class overrides gradient_checkpointing_enable without **kwargs, and transformers "
                    ">= 5.23 calls that override with every_n_layers=/offload=; add **kwargs to it, then call "
                    "activation_checkpointing_enable()",
                )
            elif verdict == "ambiguous" and self.settings.strict and self.imported_roots() & HF_ROOTS:
                self.add_todo(
                    call,
                    f"{old}() on a receiver of unknown type; if it is a transformers model "
                    f"(>= 5.23), call {METHODS[old]}()",
                )
            return
        if not any(a.star == "**" or (a.keyword is not None and a.keyword.value in FIELDS) for a in call.args):
            return  # cheap: nothing this rule could act on in this call
        if isinstance(func, cst.Attribute) and func.attr.value == "set_training":
            if self.args_receiver(func.value):
                self._rename_keywords(call)
            return
        kind = self.kind_of(func)
        if kind is None or kind.what != "ref":
            return
        if is_training_args_class(kind.qname):
            self._rename_keywords(call)
            for a in call.args:
                if a.star == "**" and isinstance(a.value, cst.Name):
                    self._plan_flow(a.value)
        elif kind.qname == "dataclasses.replace" and call.args and self.args_receiver(call.args[0].value):
            self._rename_keywords(call)

    def _rename_keywords(self, call: cst.Call) -> None:
        for old, new in FIELDS.items():
            arg = keyword_arg(call, old)
            if arg is None:
                continue
            if keyword_arg(call, new) is not None:
                self.add_todo(call, f"both {old}= and {new}= are passed; keep {new}= only")
                continue
            self.edit(arg, _rename_keyword(new), f"{old}= -> {new}=")

    def _plan_attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        if attr == PROPERTY[0]:
            parent = self.parent(node)
            if isinstance(parent, cst.AssignTarget):
                return
            verdict = self.model_receiver(node.value, attr)
            if verdict == "yes" and not self.in_fstring(node):
                self.edit(node.attr, lambda n: n.with_changes(value=PROPERTY[1]), f"{PROPERTY[0]} -> {PROPERTY[1]}")
            elif verdict == "ambiguous" and self.settings.strict and self.imported_roots() & HF_ROOTS:
                self.add_todo(
                    node,
                    f"{attr} on a receiver of unknown type; if it is a transformers model "
                    f"(>= 5.23), read {PROPERTY[1]}",
                )
            return
        if attr not in FIELDS:
            return
        recv = node.value
        if isinstance(recv, cst.Name) and recv.value in ("self", "cls"):
            return
        if self.args_receiver(recv):
            if not self.in_fstring(node):
                new = FIELDS[attr]
                self.edit(node.attr, lambda n, new=new: n.with_changes(value=new), f"{attr} -> {new}")
            return
        if self.settings.strict and self.kind_of(recv) is None:
            text = cst.Module(body=[]).code_for_node(recv)
            if _ARGS_LIKE.search(text):
                self.add_todo(
                    node,
                    f"{text}.{attr}: if {text} is a TrainingArguments/TRL config (transformers >= "
                    f"5.23), use .{FIELDS[attr]}",
                )

    # ------------------------------------------------------------------ dicts passed with ** to TrainingArguments
    def _is_sink(self, use: cst.CSTNode, container: cst.CSTNode) -> bool | None:
        if isinstance(use, cst.Arg) and use.star == "**" and isinstance(container, cst.Call):
            kind = self.kind_of(container.func)
            if kind is not None and kind.what == "ref" and is_training_args_class(kind.qname):
                return True
        return None

    def _plan_flow(self, name: cst.Name) -> None:
        key = (id(self.scope_of(name)), name.value)
        if key in self._flows_done:
            return
        self._flows_done.add(key)
        flow = self.dict_flow(name, KEYS, self._is_sink)
        if flow is None or not flow.sinks or not flow.key_nodes:
            return
        first = self.first_use(flow)
        if flow.escapes:
            self.add_todo(
                first,
                f"the dict {flow.name} with gradient_checkpointing keys also goes to "
                f"{flow.describe(flow.escapes[0])}; rename its keys to activation_checkpointing* by hand",
            )
            return
        if not flow.visible and flow.reads:
            self.add_todo(
                first,
                f"the dict {flow.name} comes from outside this scope and its gradient_checkpointing "
                "keys are read here; rename them to activation_checkpointing* where the dict is built",
            )
            return
        if any(FIELDS[k] in flow.all_keys for k, _ in flow.key_nodes):
            self.add_todo(
                first,
                f"the dict {flow.name} has both gradient_checkpointing and "
                "activation_checkpointing keys; keep the new ones",
            )
            return
        for k, node, _ in flow.key_defs:
            if isinstance(node, cst.DictElement):
                self._rename_string(node.key, k)
            elif isinstance(node, cst.Arg):
                self.edit(node, _rename_keyword(FIELDS[k]), f"{k}= -> {FIELDS[k]}= (dict)")
        for k, sub in flow.stores:
            self._rename_string(sub.slice[0].slice.value, k)
        for k, node in flow.reads:
            if isinstance(node, cst.Subscript):
                node = node.slice[0].slice.value
            self._rename_string(node, k)

    def _rename_string(self, node: cst.CSTNode, key: str) -> None:
        if isinstance(node, cst.SimpleString) and literal_string(node) == key and not self.planned(node):
            new = FIELDS[key]
            self.edit(node, lambda s: renamed_string(s, key, new), f'"{key}" -> "{new}"')


def _rename_keyword(new: str):
    return lambda a: a.with_changes(keyword=cst.Name(new))


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
