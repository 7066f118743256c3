"""trl-model-config: TRL's `ModelConfig` `torch_dtype` -> `dtype`, and its `trust_remote_code` that moved to the
trainer configs.

TRL 0.23 renamed `ModelConfig.torch_dtype` to `dtype` (gate `trl_model_config_dtype`; the old name is a TypeError /
AttributeError / TrlParser error from 0.27), and TRL 1.7 moved `trust_remote_code` from `ModelConfig` to the
trainer configs (`trl_trust_remote_code_on_configs`; no version has both).

Receivers are instances of TRL's `ModelConfig` (or the user's subclass): a `ModelConfig(...)` call, a parameter
annotated `ModelConfig` or passed to `trl.get_peft_config`/`get_quantization_config`, an element of
`parser.parse_*()` unpacking where `parser = HfArgumentParser((..., ModelConfig))` or `TrlParser(...)`. Rewritten:
`ModelConfig(torch_dtype=)` and `m.torch_dtype` (reads and writes) -> `dtype`; `m.trust_remote_code` ->
`c.trust_remote_code` where `c` comes out of the same parse as a TRL trainer config (or the user's dataclass that
declares the field), else -> `False` with a TODO (exact: no parsed object can hold the flag, so the parser refuses
`--trust_remote_code`). Reported: `ModelConfig(trust_remote_code=)`, a write of `m.trust_remote_code`, a
ModelConfig not from a parse (a parameter), `.torch_dtype` / `.trust_remote_code` on a name of unknown type in a
file that imports TRL's ModelConfig or those helpers. Left alone: the user's own `ModelArguments` dataclasses,
`model.config.torch_dtype`.
"""

from __future__ import annotations

import ast

import libcst as cst

from codemods import hf
from codemods.analysis import Binding
from codemods.rule import FileContext, Rule
from codemods.rules._function import imports_module
from codemods.rules._trainers import declares_field

_IMPORTS_TRL = imports_module("trl")
DTYPE_GATE = "trl_model_config_dtype"
TRUST_GATE = "trl_trust_remote_code_on_configs"
OLD, NEW, TRUST = "torch_dtype", "dtype", "trust_remote_code"
_MODEL_CONFIG_NAMES = frozenset({"ModelConfig", "get_peft_config", "get_quantization_config"})


def is_model_config(qname: str | None) -> bool:
    return qname is not None and hf.root(qname) == "trl" and hf.last(qname) == "ModelConfig"


class TrlModelConfig(Rule):
    id = "trl-model-config"
    summary = "TRL ModelConfig torch_dtype -> dtype; ModelConfig.trust_remote_code -> the trainer config's"
    triggers = (OLD, TRUST)
    item_gates = (DTYPE_GATE, TRUST_GATE)

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        named = "ModelConfig" in source or "get_peft_config" in source or "get_quantization_config" in source
        return named and _IMPORTS_TRL.search(source) is not None

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        a = ctx.analysis
        # a file that imports TRL's ModelConfig (or the helpers that take one) handles ModelConfigs: a `.torch_dtype`
        # on a name of unknown type there is reported
        self.imports_it = any(
            isinstance(s, ast.ImportFrom) and (s.module or "").startswith("trl") and
            any(al.name in _MODEL_CONFIG_NAMES for al in s.names) for s in a.imports
        )  # fmt: skip
        dtype, trust = ctx.target_meets(DTYPE_GATE), ctx.target_meets(TRUST_GATE)
        if dtype:
            for kw in a.keywords.get(OLD, ()):
                self.keyword(kw)
            for node in a.attributes.get(OLD, ()):
                self.attribute(node, self.dtype)
        if trust:
            for kw in a.keywords.get(TRUST, ()):
                call = a.call_of_keyword(kw)
                if call is not None and is_model_config(ctx.kinds.ref_qname(call.func)):
                    ctx.diagnose(kw, "ModelConfig has no trust_remote_code (TRL 1.7): pass it to the trainer config")
            for node in a.attributes.get(TRUST, ()):
                self.attribute(node, self.trust)

    # ------------------------------------------------------------------ receivers
    def config_binding(self, b: Binding) -> str:
        """ "yes" (a TRL ModelConfig), "no" (something else we know) or "unknown"."""
        ctx = self.ctx
        if b.kind == "param":
            ann = b.node.annotation  # type: ignore[attr-defined]
            if ann is None:
                return "yes" if self.passed_to_helpers(b) else "unknown"
            return "yes" if is_model_config(ctx.kinds.ref_qname(ann)) else "no"
        if b.kind not in ("assign", "annassign") or b.value is None:
            return "unknown"
        if b.path:
            found = self.parse_of(b)
            if found is None:
                return "unknown"
            classes, index = found
            cls = classes[index] if index < len(classes) else None
            if cls is None:
                return "unknown"
            return "yes" if is_model_config(cls.qname) else "no"
        if isinstance(b.value, ast.Call):
            qname = ctx.kinds.ref_qname(b.value.func)
            if qname is not None:
                return "yes" if is_model_config(qname) else "no"
        kind = ctx.kinds.kind_of(b.value)
        return "unknown" if kind is None else "no"

    def passed_to_helpers(self, b: Binding) -> bool:
        """The parameter is given to `trl.get_peft_config(p)` / `trl.get_quantization_config(p)` in its function:
        both take TRL's ModelConfig (TRL's own scripts: `def main(script_args, training_args, model_args)`)."""
        a = self.ctx.analysis
        for name in ("get_peft_config", "get_quantization_config"):
            for call in [*a.calls_by_name.get(name, ()), *a.calls_by_attr.get(name, ())]:
                first = call.args[0] if call.args else None
                if (
                    isinstance(first, ast.Name)
                    and first.id == b.name
                    and b in a.reaching(first)
                    and hf.root(self.ctx.kinds.ref_qname(call.func) or "") == "trl"
                ):
                    return True
        return False

    def parse_of(self, b: Binding) -> tuple[tuple, int] | None:
        """(the parser's classes, this element's index) for `a, b, c = parser.parse_*(...)`."""
        value = b.value
        if len(b.path) != 1 or not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
            return None
        if not value.func.attr.startswith("parse_") or value.func.attr == "parse_args":
            return None
        parser = self.ctx.kinds.kind_of(value.func.value)
        if parser is None or parser.what != "parser" or not parser.classes:
            return None
        return parser.classes, b.path[0]

    def parser_kinds(self, parser: ast.AST) -> list | None:
        """The kinds of the classes of `HfArgumentParser((A, B, C))` (inline, or a name bound once to it), the
        user's own classes included (None when the tuple is not a literal we can read)."""
        a = self.ctx.analysis
        call = parser
        if isinstance(parser, ast.Name):
            found = a.reaching(parser)
            call = found[0].value if len(found) == 1 and found[0].kind == "assign" and not found[0].path else None
        if not isinstance(call, ast.Call) or not call.args or not isinstance(call.args[0], (ast.Tuple, ast.List)):
            return None
        return [self.ctx.kinds.kind_of(el) for el in call.args[0].elts]

    def receiver(self, node: ast.AST) -> str:
        if not isinstance(node, ast.Name):
            return "no" if not isinstance(node, ast.Call) else self.call_receiver(node)
        if node.id in ("self", "cls"):
            return "no"
        found = self.ctx.analysis.reaching(node)
        if not found:
            return "unknown"
        sides = {self.config_binding(b) for b in found}
        if sides == {"yes"}:
            return "yes"
        return "no" if sides == {"no"} else "unknown"

    def call_receiver(self, call: ast.Call) -> str:
        return "yes" if is_model_config(self.ctx.kinds.ref_qname(call.func)) else "no"

    # ------------------------------------------------------------------ rewrites
    def keyword(self, kw: ast.keyword) -> None:
        ctx = self.ctx
        call = ctx.analysis.call_of_keyword(kw)
        if call is None or not is_model_config(ctx.kinds.ref_qname(call.func)):
            return
        kind = ctx.kinds.kind_of(call.func)
        if declares_field(kind.cls if kind is not None else None, OLD):
            return
        if any(k.arg == NEW for k in call.keywords):
            ctx.diagnose(kw, "both torch_dtype= and dtype= are given; keep dtype=")
        else:
            ctx.rename_keyword(kw, NEW)

    def attribute(self, node: ast.Attribute, then) -> None:
        ctx = self.ctx
        if ctx.analysis.in_fstring(node):
            return
        side = self.receiver(node.value)
        if side == "yes":
            then(node)
        elif side == "unknown" and self.imports_it and isinstance(node.value, ast.Name):
            ctx.diagnose(
                node,
                f"if {node.value.id} is TRL's ModelConfig: {self.hint(node.attr)}",
                f"if this is TRL's ModelConfig: {self.hint(node.attr)}",
            )

    @staticmethod
    def hint(attr: str) -> str:
        if attr == OLD:
            return "read .dtype (TRL 0.23)"
        return "trust_remote_code is on the trainer config (TRL 1.7)"

    def dtype(self, node: ast.Attribute) -> None:
        self.ctx.rename_attribute(node, NEW)

    def trust(self, node: ast.Attribute) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        if not isinstance(node.ctx, ast.Load):
            ctx.diagnose(node, "ModelConfig has no trust_remote_code (TRL 1.7): set it on the trainer config")
            return
        holder = self.holder(node.value) if isinstance(node.value, ast.Name) else None
        if holder is None:
            ctx.diagnose(node, "ModelConfig has no trust_remote_code (TRL 1.7): read it from the trainer config")
            return
        if holder == "":
            ctx.edit(node, lambda _n: cst.Name("False"), "ModelConfig.trust_remote_code -> False (no parsed field)")
            ctx.todo(
                node,
                "ModelConfig.trust_remote_code gone (TRL 1.7): set it on a TRL config",
                "trust_remote_code is on the TRL configs (TRL 1.7)",
            )
            return
        ctx.edit(
            node,
            lambda n: n.with_changes(value=cst.Name(holder)),
            f"{a.text(node)} -> {holder}.trust_remote_code",
        )

    def holder(self, name: ast.Name) -> str | None:
        """The name of the object of the same parse that holds `trust_remote_code` today ("" when the parse has
        none, so the flag can only be False); None when the ModelConfig does not come from a parse we can read."""
        a = self.ctx.analysis
        found = a.reaching(name)
        if len(found) != 1:
            return None
        b = found[0]
        parse = self.parse_of(b) if b.path else None
        if parse is None or not isinstance(b.statement, ast.Assign) or len(b.statement.targets) != 1:
            return None
        target = b.statement.targets[0]
        classes = self.parser_kinds(b.value.func.value)  # type: ignore[union-attr]
        if not isinstance(target, (ast.Tuple, ast.List)) or classes is None:
            return None
        for cls, element in zip(classes, target.elts):
            if cls is None or cls.what not in ("ref", "local"):
                if isinstance(element, ast.Name):
                    return None  # a class we cannot see: it may declare the field
                continue
            holds = (hf.root(cls.qname) == "trl" and hf.is_training_args_class(cls.qname)) or declares_field(
                cls.cls, TRUST
            )
            if holds:
                if not isinstance(element, ast.Name) or len(b.scope.bindings.get(element.id, ())) != 1:
                    return None
                if a.scope_of(name) is not b.scope and element.id in a.scope_of(name).locals:
                    return None
                return element.id
        return ""
