"""Shared machinery of the transformers rules (transformers-torch-dtype, -load-in-kbit, -activation-checkpointing).

Not a rule itself. It answers three questions with the metadata the engine already computed (qualified names,
scopes, parents), without any extra parse:

- what does an expression refer to (`kind_of`): a class or function imported from transformers/trl/peft, one
  imported from another library, an instance of a transformers model, of `TrainingArguments`/a TRL config, of a
  Trainer, of something foreign, or unknown. Followed through same-scope assignments (`M = AutoModel`,
  `model = M.from_pretrained(...)`, `model = model.to(dev)`, `a, b = HfArgumentParser((X, Y)).parse_...()`),
  parameter annotations, `self.args`/`self.model` in Trainer subclasses, and `trainer.args`/`trainer.model`.
- where does a dict go (`dict_flow`): the definitions, key uses, sinks and escapes of a dict variable in one scope,
  so that a key (`"torch_dtype"`) can be renamed in every place at once or, where that is unsafe, flagged.
- the edit plan: rules decide everything in `plan()` (called once per file from `visit_Module`, before any node is
  transformed, so a dict defined above its sink can still be rewritten) and register per-node edits that
  `on_leave` applies, recording each one.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import libcst as cst
from libcst.metadata import ParentNodeProvider, QualifiedNameProvider, QualifiedNameSource, ScopeProvider

from codemods.base import Rule

_IMPORTS_HF = re.compile(r"^[ \t]*(?:from|import)[ \t]+(?:transformers|trl|peft)\b", re.M)
HF_ROOTS = frozenset({"transformers", "trl", "peft"})
TRL_TRAINING_CONFIGS = frozenset(
    {
        "SFTConfig", "DPOConfig", "GRPOConfig", "KTOConfig", "ORPOConfig", "CPOConfig", "RewardConfig", "PPOConfig",
        "RLOOConfig", "OnlineDPOConfig", "BCOConfig", "PRMConfig", "GKDConfig", "NashMDConfig", "XPOConfig",
        "IterativeSFTConfig", "GOLDConfig", "MiniLLMConfig",
    }
)  # fmt: skip
_NOT_MODEL_SUFFIXES = (
    "Tokenizer", "TokenizerFast", "Processor", "ProcessorFast", "FeatureExtractor", "Config", "Arguments", "Trainer",
    "Parser", "Pipeline", "Callback", "Collator", "Mixin", "Output", "Cache", "Streamer",
)  # fmt: skip
MODEL_PRESERVING_METHODS = frozenset(
    {"to", "cuda", "cpu", "half", "float", "bfloat16", "eval", "train", "requires_grad_", "merge_and_unload",
     "get_base_model", "to_empty"}
)  # fmt: skip
PEFT_MODEL_FUNCTIONS = frozenset(
    {"get_peft_model", "prepare_model_for_kbit_training", "prepare_model_for_int8_training"}
)
LOAD_METHODS = frozenset({"from_pretrained", "from_config", "_from_config"})


def root(qname: str) -> str:
    return qname.split(".", 1)[0]


def last(qname: str) -> str:
    return qname.rsplit(".", 1)[-1]


def is_hf(qname: str) -> bool:
    return root(qname) in HF_ROOTS


def is_model_class(qname: str) -> bool:
    """A transformers model class (Auto* or concrete), TRL's value-head wrappers, peft's model classes."""
    if not is_hf(qname):
        return False
    name = last(qname)
    if not name[:1].isupper() or name.endswith(_NOT_MODEL_SUFFIXES):
        return False
    if root(qname) == "peft":
        return name.startswith(("PeftModel", "AutoPeftModel"))
    return True


def is_loading_model_class(qname: str) -> bool:
    """A class whose from_pretrained/from_config hands its keywords to transformers' from_pretrained."""
    if not is_model_class(qname):
        return False
    return not (root(qname) == "peft" and last(qname).startswith("PeftModel"))


def is_training_args_class(qname: str) -> bool:
    if root(qname) == "transformers":
        return last(qname).endswith("TrainingArguments")
    return root(qname) == "trl" and last(qname) in TRL_TRAINING_CONFIGS


def is_trainer_class(qname: str) -> bool:
    return is_hf(qname) and last(qname).endswith("Trainer")


def is_arg_parser_class(qname: str) -> bool:
    return (root(qname) == "transformers" and last(qname) == "HfArgumentParser") or (
        root(qname) == "trl" and last(qname) == "TrlParser"
    )


# ----------------------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """What an expression is. `what`: "ref" (a module-level name imported from `qname`), "model" (a transformers
    model instance), "args" (TrainingArguments or a TRL config instance; `qname` the class), "trainer", "parser"
    (HfArgumentParser/TrlParser over `classes`), "foreign" (an instance or a name from another library), "argparse"."""

    what: str
    qname: str = ""
    classes: tuple[str, ...] = ()
    # a local subclass overrides gradient_checkpointing_enable without **kwargs: transformers >= 5.23's
    # activation_checkpointing_enable calls such an override with every_n_layers=/offload= (TypeError)
    old_override: bool = False


MODEL = Kind("model")
_CYCLE = Kind("cycle")


def literal_string(node: cst.CSTNode | None) -> str | None:
    if isinstance(node, cst.SimpleString):
        try:
            value = node.evaluated_value
        except Exception:  # pragma: no cover - malformed literal
            return None
        return value if isinstance(value, str) else None
    return None


def renamed_string(node: cst.SimpleString, old: str, new: str) -> cst.SimpleString:
    return node.with_changes(value=node.value.replace(old, new, 1))


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


@dataclass
class DictFlow:
    """The uses of one dict variable in one scope, for the keys a rule cares about."""

    name: str
    visible: bool = True  # every definition is a dict literal / dict(...) call we can see whole
    definitions: list[cst.CSTNode] = field(default_factory=list)  # the Dict / Call (dict(...)) nodes
    key_defs: list[tuple[str, cst.CSTNode, cst.CSTNode]] = field(default_factory=list)  # (key, node, container)
    stores: list[tuple[str, cst.Subscript]] = field(default_factory=list)  # d["key"] = ...
    reads: list[tuple[str, cst.CSTNode]] = field(default_factory=list)  # d["key"], d.get("key"), "key" in d...
    sinks: list[cst.CSTNode] = field(default_factory=list)
    escapes: list[cst.CSTNode] = field(default_factory=list)
    all_keys: set[str] = field(default_factory=set)  # every literal key seen in definitions/stores

    def describe(self, node: cst.CSTNode) -> str:
        return describe(node)

    @property
    def key_nodes(self) -> list[tuple[str, cst.CSTNode]]:
        out = [(key, node) for key, node, _ in self.key_defs]
        out += [(key, sub) for key, sub in self.stores]
        out += list(self.reads)
        return out


_HARMLESS_CALLEES = frozenset({"print", "len", "str", "repr", "pprint", "pformat", "sorted", "list", "set"})
_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception", "log"})


class HFRule(Rule):
    """Base of the three transformers rules: the plan/apply plumbing plus the queries in the module docstring."""

    ast_key: ClassVar[str] = ""  # this rule's entry in AstFacts.flags
    _strict: ClassVar[bool] = False

    @classmethod
    def enabled(cls, settings) -> bool:
        # The engine asks enabled(settings) right before the text pre-filter; `could_apply` has no settings, and in
        # --strict mode the ast pre-check must also let through the files with ambiguous cases (they get TODOs).
        cls._strict = bool(getattr(settings, "strict", False))
        return super().enabled(settings)

    @classmethod
    def could_apply(cls, source: str) -> bool:
        if "model_init_kwargs" not in source:
            if _IMPORTS_HF.search(source) is None:
                return False
            if cls.ast_key in ("torch_dtype", "kbit") and not cls._strict and not loads_hf_class(source):
                return False
        return ast_says(source, cls.ast_key, cls._strict)

    # ------------------------------------------------------------------ plan / apply
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._edits: dict[int, list[tuple[Callable[[cst.CSTNode], cst.CSTNode], str]]] = {}
        self._after: dict[int, list[Callable]] = {}
        self._kind_cache: dict[int, Kind | None] = {}
        self._visiting: set[int] = set()
        self._imports_cache: set[str] | None = None

    def visit_Module(self, node: cst.Module) -> bool:
        self.plan(node)
        return bool(self._edits) or bool(self._todos) or bool(self._after)

    def plan(self, module: cst.Module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def edit(self, node: cst.CSTNode, fn: Callable[[cst.CSTNode], cst.CSTNode], message: str) -> None:
        """Schedule `fn(updated_node)` for the original `node` (applied in on_leave, recorded then)."""
        self._edits.setdefault(id(node), []).append((fn, message))

    def planned(self, node: cst.CSTNode) -> bool:
        return id(node) in self._edits

    def after(self, statement: cst.CSTNode, fn: Callable[[cst.CSTNode], cst.CSTNode | cst.FlattenSentinel]) -> None:
        """Schedule `fn(result)` on a statement once it is final (TODO comments added, `# compat: skip` honoured;
        not run when the statement came back unchanged): e.g. a local import placed above it."""
        self._after.setdefault(id(statement), []).append(fn)

    def on_leave(self, original_node, updated_node):  # type: ignore[override]
        edits = self._edits.pop(id(original_node), None)
        if edits:
            for fn, message in edits:
                updated_node = fn(updated_node)
                self.record(original_node, message)
        result = super().on_leave(original_node, updated_node)
        post = self._after.pop(id(original_node), None)
        if post and result is not original_node:
            for fn in post:
                result = fn(result)
        return result

    def all_nodes(self) -> Iterable[cst.CSTNode]:
        return self.metadata[ParentNodeProvider].keys()

    # ------------------------------------------------------------------ file-level facts
    def imported_roots(self) -> set[str]:
        """Top-level packages imported anywhere in the file (absolute imports only)."""
        if self._imports_cache is None:
            roots: set[str] = set()
            for node in self.all_nodes():
                if isinstance(node, cst.Import):
                    for alias in node.names:
                        roots.add(root(cst.helpers.get_full_name_for_node(alias.name) or ""))
                elif isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
                    roots.add(root(cst.helpers.get_full_name_for_node(node.module) or ""))
            self._imports_cache = roots
        return self._imports_cache

    # ------------------------------------------------------------------ tree helpers
    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        current = self.parent(node)
        while current is not None:
            yield current
            current = self.parent(current)

    def in_fstring(self, node: cst.CSTNode) -> bool:
        return any(isinstance(a, cst.FormattedString) for a in self.ancestors(node))

    def enclosing_class(self, node: cst.CSTNode) -> cst.ClassDef | None:
        for anc in self.ancestors(node):
            if isinstance(anc, cst.ClassDef):
                return anc
        return None

    def scope_of(self, node: cst.CSTNode):
        return self.get_metadata(ScopeProvider, node, None)

    # ------------------------------------------------------------------ names
    def imported_qnames(self, node: cst.CSTNode) -> set[str]:
        """Qualified names of `node` when it (or its head) comes from an absolute import; empty otherwise."""
        qnames = self.get_metadata(QualifiedNameProvider, node, set())
        if not qnames:
            return set()
        if all(q.source == QualifiedNameSource.IMPORT and not q.name.startswith(".") for q in qnames):
            return {q.name for q in qnames}
        return set()

    def call_qname(self, call: cst.Call) -> str | None:
        """The single imported qualified name of the callee (`transformers.AutoModel.from_pretrained`)."""
        names = self.imported_qnames(call.func)
        return next(iter(names)) if len(names) == 1 else None

    def ref_qname(self, expr: cst.BaseExpression) -> str | None:
        """The imported qualified name an expression refers to, also through `M = AutoModel`-style aliases."""
        kind = self.kind_of(expr)
        return kind.qname if kind is not None and kind.what == "ref" else None

    # ------------------------------------------------------------------ kinds
    def kind_of(self, expr: cst.CSTNode) -> Kind | None:
        key = id(expr)
        if key in self._kind_cache:
            return self._kind_cache[key]
        if key in self._visiting:
            return _CYCLE
        self._visiting.add(key)
        try:
            kind = self._kind_of(expr)
        finally:
            self._visiting.discard(key)
        self._kind_cache[key] = kind
        return kind

    def _kind_of(self, expr: cst.CSTNode) -> Kind | None:
        if isinstance(expr, (cst.Name, cst.Attribute)):
            names = self.imported_qnames(expr)
            if len(names) == 1:
                return Kind("ref", next(iter(names)))
            if len(names) > 1:
                return None
        if isinstance(expr, cst.Name):
            return self._kind_of_local(expr)
        if isinstance(expr, cst.Attribute):
            return self._kind_of_attribute(expr)
        if isinstance(expr, cst.Call):
            return self._kind_of_call(expr)
        if isinstance(expr, cst.IfExp):
            return _unify([self.kind_of(expr.body), self.kind_of(expr.orelse)])
        return None

    def _kind_of_attribute(self, expr: cst.Attribute) -> Kind | None:
        attr = expr.attr.value
        base = expr.value
        if isinstance(base, cst.Name) and base.value == "self":
            cls = self.enclosing_class(expr)
            if cls is not None and any(self._base_is_trainer(b.value) for b in cls.bases):
                if attr == "args":
                    return Kind("args", "transformers.TrainingArguments")
                if attr == "model":
                    return MODEL
            return None
        base_kind = self.kind_of(base)
        if base_kind is None:
            return None
        if base_kind.what == "trainer":
            if attr == "args":
                return Kind("args", "transformers.TrainingArguments")
            if attr == "model":
                return MODEL
        if base_kind.what in ("foreign", "argparse"):
            return None
        return None

    def _wrapped(self, call: cst.Call) -> Kind | None:
        """get_peft_model(m, ...), prepare_model_for_kbit_training(m), PeftModel.from_pretrained(m, ...): the result
        forwards the checkpointing methods to `m`, so it is a model exactly when `m` is one (same overrides)."""
        first = call.args[0] if call.args and call.args[0].keyword is None and not call.args[0].star else None
        if first is None:
            first = next((a for a in call.args if a.keyword is not None and a.keyword.value == "model"), None)
        if first is None:
            return None
        kind = self.kind_of(first.value)
        return kind if kind is not None and kind.what == "model" else None

    def _remote_code(self, call: cst.Call) -> bool:
        """`trust_remote_code=` (not literal False/None) in the call or in a same-scope `**` dict: the class comes from
        the Hub and may override gradient_checkpointing_enable the old way."""
        for a in call.args:
            if a.keyword is not None and a.keyword.value == "trust_remote_code":
                return not (isinstance(a.value, cst.Name) and a.value.value in ("False", "None"))
            if a.star == "**" and isinstance(a.value, cst.Name):
                flow = self.dict_flow(a.value, frozenset({"trust_remote_code"}), lambda use, container: None)
                if flow is not None and flow.key_nodes:
                    return True
        return False

    def _base_is_trainer(self, expr: cst.BaseExpression) -> bool:
        kind = self.kind_of(expr)
        return kind is not None and kind.what == "ref" and is_trainer_class(kind.qname)

    def _kind_of_call(self, call: cst.Call) -> Kind | None:
        func = call.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            recv = self.kind_of(func.value)
            if recv is not None and recv.what == "ref":
                if method in LOAD_METHODS:
                    if root(recv.qname) == "peft" and last(recv.qname).startswith("PeftModel"):
                        return self._wrapped(call)  # PeftModel.from_pretrained(base, ...) forwards to base
                    if is_model_class(recv.qname):
                        if self._remote_code(call):
                            return None  # the Hub's code may define any class, with old-style overrides
                        return Kind("model", old_override=recv.old_override)
                    if not is_hf(recv.qname):
                        return Kind("foreign", recv.qname)
                    return None
                if method == "from_pretrained" and not is_hf(recv.qname):
                    return Kind("foreign", recv.qname)
            if recv is not None and recv.what == "model" and method in MODEL_PRESERVING_METHODS:
                return recv
            if recv is not None and recv.what == "parser" and method == "parse_args":
                return Kind("argparse")
            if recv is not None and recv.what == "ref" and recv.qname == "argparse.ArgumentParser":
                return None
            if recv is not None and recv.what == "argparse_parser" and method in ("parse_args", "parse_known_args"):
                return Kind("argparse")
            if recv is not None and recv.what == "args" and method == "set_training":
                return recv
        callee = self.kind_of(func)
        if callee is None or callee.what != "ref":
            return None
        qname = callee.qname
        if qname == "argparse.ArgumentParser":
            return Kind("argparse_parser")
        if is_hf(qname):
            name = last(qname)
            if is_training_args_class(qname):
                return Kind("args", qname)
            if is_trainer_class(qname):
                return Kind("trainer", qname)
            if is_arg_parser_class(qname):
                return Kind("parser", qname, self._parser_classes(call))
            if root(qname) == "peft" and name in PEFT_MODEL_FUNCTIONS:
                return self._wrapped(call)
            if is_model_class(qname):
                return Kind("model", old_override=callee.old_override)
            return None
        if root(qname) == "dataclasses" and last(qname) == "replace" and call.args:
            inner = self.kind_of(call.args[0].value)
            return inner if inner is not None and inner.what == "args" else None
        if last(qname)[:1].isupper():
            return Kind("foreign", qname)
        return None

    def _parser_classes(self, call: cst.Call) -> tuple[str, ...]:
        if not call.args:
            return ()
        value = call.args[0].value
        elements = value.elements if isinstance(value, (cst.Tuple, cst.List)) else [cst.Element(value)]
        out = []
        for el in elements:
            if isinstance(el, cst.StarredElement):
                return ()
            out.append(self.ref_qname(el.value) or "")
        return tuple(out)

    def _kind_of_local(self, expr: cst.Name) -> Kind | None:
        if expr.value == "self":
            return None
        scope = self.scope_of(expr)
        if scope is None:
            return None
        try:
            assignments = scope[expr.value]
        except Exception:  # pragma: no cover
            return None
        if not assignments:
            return None
        kinds = []
        for asg in assignments:
            node = getattr(asg, "node", None)
            kinds.append(self._kind_of_assignment(node, expr.value))
        return _unify(kinds)

    def _kind_of_assignment(self, node: cst.CSTNode | None, name: str) -> Kind | None:
        if isinstance(node, cst.ClassDef):
            # `class MyLlama(LlamaForCausalLM): ...` loads, constructs and checkpoints like its transformers base
            for base in node.bases:
                kind = self.kind_of(base.value)
                if kind is not None and kind.what == "ref" and is_loading_model_class(kind.qname):
                    return Kind("ref", kind.qname, old_override=kind.old_override or _old_override(node))
            return None
        if isinstance(node, cst.Param):
            if node.annotation is not None:
                ann = node.annotation.annotation
                if isinstance(ann, cst.SimpleString):
                    return None
                kind = self.kind_of(ann)
                if kind is not None and kind.what == "ref":
                    if is_training_args_class(kind.qname):
                        return Kind("args", kind.qname)
                    if is_model_class(kind.qname) or kind.qname.endswith("PreTrainedModel"):
                        return MODEL
                    if is_trainer_class(kind.qname):
                        return Kind("trainer", kind.qname)
            return None
        if not isinstance(node, cst.Name):
            return None
        parent = self.parent(node)
        if isinstance(parent, cst.AssignTarget):
            assign = self.parent(parent)
            if isinstance(assign, cst.Assign) and len(assign.targets) == 1:
                return self.kind_of(assign.value)
            return None
        if isinstance(parent, cst.AnnAssign) and parent.value is not None:
            kind = self.kind_of(parent.value)
            if kind is None:
                ann = self.kind_of(parent.annotation.annotation)
                if ann is not None and ann.what == "ref" and is_training_args_class(ann.qname):
                    return Kind("args", ann.qname)
            return kind
        if isinstance(parent, cst.Element):
            tup = self.parent(parent)
            target = self.parent(tup) if isinstance(tup, (cst.Tuple, cst.List)) else None
            assign = self.parent(target) if isinstance(target, cst.AssignTarget) else None
            if not isinstance(assign, cst.Assign) or len(assign.targets) != 1:
                return None
            index = next((i for i, el in enumerate(tup.elements) if el is parent), None)
            if index is None or any(isinstance(el, cst.StarredElement) for el in tup.elements):
                return None
            value = assign.value
            if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
                parser = self.kind_of(value.func.value)
                if (
                    parser is not None
                    and parser.what == "parser"
                    and value.func.attr.value.startswith("parse_")
                    and value.func.attr.value != "parse_args"
                    and index < len(parser.classes)
                ):
                    cls = parser.classes[index]
                    if is_training_args_class(cls):
                        return Kind("args", cls)
            return None
        return None

    # ------------------------------------------------------------------ dict flows
    def dict_flow(
        self,
        name_node: cst.Name,
        keys: frozenset[str],
        is_sink: Callable[[cst.CSTNode, cst.CSTNode], bool | None],
    ) -> DictFlow | None:
        """The flow of the dict variable `name_node` (an access) in its own scope. `is_sink(use, container)` says
        whether a use of the dict (`**d` in a call: (Arg, Call); a keyword value: (Arg, Call); an attribute
        assignment: (Assign, Assign)) is a known sink (True), a known non-sink (False: an escape), or None (not a
        sink-shaped use: classified here). Returns None when the name is not a local of that scope."""
        scope = self.scope_of(name_node)
        name = name_node.value
        if scope is None or name not in scope.assignments:
            return None
        flow = DictFlow(name)
        for asg in scope.assignments[name]:
            self._dict_definition(flow, getattr(asg, "node", None), keys)
        for access in scope.accesses[name]:
            self._dict_access(flow, access.node, keys, is_sink)
        return flow

    def _dict_literal_keys(self, flow: DictFlow, value: cst.BaseExpression, keys: frozenset[str]) -> bool:
        """Collect the keys of a dict literal or dict(...) call; False when the value is neither."""
        if isinstance(value, cst.Dict):
            flow.definitions.append(value)
            for el in value.elements:
                if isinstance(el, cst.StarredDictElement):
                    flow.visible = False
                    continue
                key = literal_string(el.key)
                if key is None:
                    continue
                flow.all_keys.add(key)
                if key in keys:
                    flow.key_defs.append((key, el, value))
            return True
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "dict":
            if self.imported_qnames(value.func):
                return False
            flow.definitions.append(value)
            for arg in value.args:
                if arg.keyword is not None:
                    flow.all_keys.add(arg.keyword.value)
                    if arg.keyword.value in keys:
                        flow.key_defs.append((arg.keyword.value, arg, value))
                elif arg.star == "" and isinstance(arg.value, cst.Dict):
                    self._dict_literal_keys(flow, arg.value, keys)
                    flow.definitions.remove(arg.value)
                else:
                    flow.visible = False
            return True
        return False

    def _dict_definition(self, flow: DictFlow, node: cst.CSTNode | None, keys: frozenset[str]) -> None:
        if isinstance(node, cst.Name):
            parent = self.parent(node)
            if isinstance(parent, cst.AssignTarget):
                assign = self.parent(parent)
                if isinstance(assign, cst.Assign) and len(assign.targets) == 1:
                    if self._dict_literal_keys(flow, assign.value, keys):
                        return
            elif isinstance(parent, cst.AnnAssign) and parent.value is not None:
                if self._dict_literal_keys(flow, parent.value, keys):
                    return
            elif isinstance(parent, cst.AugAssign) and isinstance(parent.operator, cst.BitOrAssign):
                if self._dict_literal_keys(flow, parent.value, keys):
                    return
        flow.visible = False

    def _dict_access(self, flow: DictFlow, node: cst.CSTNode, keys, is_sink) -> None:
        parent = self.parent(node)
        if isinstance(parent, cst.Arg) and parent.value is node:
            call = self.parent(parent)
            verdict = is_sink(parent, call) if isinstance(call, cst.Call) else None
            if verdict:
                flow.sinks.append(parent)
                return
            if verdict is False:
                flow.escapes.append(call)
                return
            if parent.star == "" and parent.keyword is None and isinstance(call, cst.Call):
                if self._harmless_call(call):
                    return
            flow.escapes.append(call if isinstance(call, cst.Call) else parent)
            return
        if isinstance(parent, cst.Subscript) and parent.value is node:
            key = None
            if len(parent.slice) == 1 and isinstance(parent.slice[0].slice, cst.Index):
                key = literal_string(parent.slice[0].slice.value)
            if key is None:
                return
            holder = self.parent(parent)
            if isinstance(holder, cst.AssignTarget):
                flow.all_keys.add(key)
                if key in keys:
                    flow.stores.append((key, parent))
            elif key in keys:
                flow.reads.append((key, parent))
            return
        if isinstance(parent, cst.Attribute) and parent.value is node:
            call = self.parent(parent)
            method = parent.attr.value
            if not (isinstance(call, cst.Call) and call.func is parent):
                flow.escapes.append(parent)
                return
            if method in ("get", "pop", "setdefault"):
                key = literal_string(call.args[0].value) if call.args else None
                if key in keys:
                    flow.reads.append((key, call.args[0].value))
                if method == "setdefault" and key is not None:
                    flow.all_keys.add(key)
                return
            if method == "update":
                for arg in call.args:
                    if arg.keyword is not None:
                        flow.all_keys.add(arg.keyword.value)
                        if arg.keyword.value in keys:
                            flow.key_defs.append((arg.keyword.value, arg, call))
                    elif arg.star == "" and isinstance(arg.value, cst.Dict):
                        before = len(flow.definitions)
                        self._dict_literal_keys(flow, arg.value, keys)
                        del flow.definitions[before:]
                    else:
                        flow.visible = False
                return
            if method in ("items", "keys", "values", "__len__"):
                return
            flow.escapes.append(call)
            return
        if isinstance(parent, cst.ComparisonTarget) and parent.comparator is node:
            comparison = self.parent(parent)
            if isinstance(parent.operator, (cst.In, cst.NotIn)) and isinstance(comparison, cst.Comparison):
                key = literal_string(comparison.left)
                if key in keys:
                    flow.reads.append((key, comparison.left))
                return
            return
        if isinstance(parent, cst.Assign) and parent.value is node:
            verdict = is_sink(parent, parent)
            (flow.sinks if verdict else flow.escapes).append(parent)
            return
        if isinstance(parent, (cst.FormattedStringExpression, cst.Comparison)):
            return
        if isinstance(parent, (cst.AugAssign,)) and parent.target is node:
            return
        flow.escapes.append(parent if parent is not None else node)

    def first_use(self, flow: DictFlow, keys: Iterable[str] | None = None) -> cst.CSTNode:
        """The key use of `flow` that comes first in the file (where a TODO goes)."""
        uses = [n for k, n in flow.key_nodes if keys is None or k in keys]
        return min(uses, key=self.line_of)

    def _harmless_call(self, call: cst.Call) -> bool:
        func = call.func
        if isinstance(func, cst.Name) and func.value in _HARMLESS_CALLEES and not self.imported_qnames(func):
            return True
        if isinstance(func, cst.Attribute) and func.attr.value in _LOG_METHODS:
            head = func.value
            if isinstance(head, cst.Name) and ("log" in head.value.lower()):
                return True
            if isinstance(head, cst.Attribute) and "log" in head.attr.value.lower():
                return True
        return False


def _old_override(cls: cst.ClassDef) -> bool:
    """The class defines gradient_checkpointing_enable without a **kwargs parameter."""
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "gradient_checkpointing_enable":
            return not isinstance(stmt.params.star_kwarg, cst.Param)
    return False


def _unify(kinds: Iterable[Kind | None]) -> Kind | None:
    result: Kind | None = None
    seen = False
    for kind in kinds:
        if kind is _CYCLE:
            continue
        if kind is None:
            return None
        if not seen:
            result, seen = kind, True
        elif kind != result:
            if kind.what == result.what == "args":
                continue
            if (
                kind.what == result.what == "ref"
                and is_loading_model_class(kind.qname)
                and is_loading_model_class(result.qname)
            ):
                continue  # `cls = AutoModelForSeq2SeqLM if s2s else AutoModelForCausalLM`
            return None
    return result


def code(node: cst.CSTNode) -> str:
    return " ".join(cst.Module(body=[]).code_for_node(node).split())


def describe(node: cst.CSTNode) -> str:
    """A short description of where a dict escapes to, for TODO comments."""
    if isinstance(node, cst.Arg):
        return f"`{_short(code(node))}` (another call)"
    if isinstance(node, cst.Call):
        return f"`{_short(code(node.func))}(...)`"
    if isinstance(node, cst.Return):
        return "a return"
    return f"`{_short(code(node))}`"


def _short(text: str) -> str:
    return text if len(text) <= 50 else text[:47] + "..."


# ----------------------------------------------------------------------------------------------- text pre-check
_FROM_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+(?:transformers|trl|peft)(?:\.[\w.]+)?[ \t]+import[ \t]*(\([^)]*\)|[^\n]*(?:\\\n[^\n]*)*)", re.M
)
_PLAIN_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n]*)", re.M)


def hf_names(source: str) -> set[str]:
    """The local names that absolute imports of transformers/trl/peft bind (text only: `from transformers import
    (A, B as C)`, `import transformers as tf`, `import peft`)."""
    names: set[str] = set()
    for m in _FROM_IMPORT.finditer(source):
        body = re.sub(r"#[^\n]*", "", m.group(1)).strip("()\\ \t\n")
        for item in body.replace("\\\n", " ").split(","):
            words = item.split()
            if len(words) == 3 and words[1] == "as":
                names.add(words[2])
            elif len(words) == 1:
                names.add(words[0])
    for m in _PLAIN_IMPORT.finditer(source):
        for item in re.sub(r"#.*", "", m.group(1)).split(","):
            words = item.split()
            if not words or words[0].split(".", 1)[0] not in HF_ROOTS:
                continue
            names.add(words[2] if len(words) == 3 and words[1] == "as" else words[0].split(".", 1)[0])
    return {n for n in names if n.isidentifier()}


def loads_hf_class(source: str) -> bool:
    """Could a from_pretrained/from_config/_from_config or pipeline call in this file have a transformers/trl/peft
    receiver? Some imported name is used as `Name.from_...(`, `Name.x.from_...(` (module aliases), `Name(` (pipeline,
    configs) or assigned (`M = Name`, `cls = A if c else B`). The ast pre-check and the libcst pass decide the rest;
    this only spares them the diffusers-style files that import a transformers class but load their own."""
    names = hf_names(source)
    if not names:
        return False
    alt = "|".join(sorted(map(re.escape, names)))
    shape = re.compile(
        rf"\b(?:{alt})\b(?:\s*\)?\s*\.\s*[\w.\s]*?\b_?from_(?:pretrained|config)\b|\s*\()|=\s*\(?\s*(?:{alt})\b"
        rf"|^[ \t]*class[ \t]+\w+[ \t]*\([^)]*\b(?:{alt})\b",
        re.M,
    )
    return shape.search(source) is not None


# ----------------------------------------------------------------------------------------------- the ast pre-check
# libcst's parse plus scope/qualified-name metadata costs seconds on a 6,000-line file (transformers' own
# modeling_utils.py, trainer.py); CPython's ast parses it in ~60 ms. The rules' `could_apply` runs this cheap
# over-approximation of their own decision on the ast: a file is handed to libcst only when it holds a call or an
# attribute that the rule could act on (a receiver that can be typed, a class imported from transformers/trl/peft).
# It must never say "no" where the libcst pass would rewrite or flag something.


class AstFacts:
    """Per-file facts from one `ast.parse`, shared by the three rules (cached on the source string)."""

    def __init__(self, tree: ast.Module, source: str) -> None:
        self.imports: dict[str, str] = {}
        for node in _statements(tree.body):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".", 1)[0]
                        self.imports[head] = head
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.hf_imported = any(root(q) in HF_ROOTS for q in self.imports.values())
        self.hf_subclasses = {
            node.name
            for node in _statements(tree.body)
            if isinstance(node, ast.ClassDef) and any(is_hf(self.resolve(b) or "") for b in node.bases)
        }
        self.tree = tree
        self.flags = {"torch_dtype": False, "kbit": False, "activation": False}
        self.strict_flags = {"torch_dtype": False, "kbit": False, "activation": False}
        if not self.hf_imported and "model_init_kwargs" not in source:
            return
        # Only the defs (functions, classes) whose lines hold one of the names are scanned: everything a rule acts
        # on, and the same-scope dict definitions it follows, sit in such a def (or at module level).
        lines = {source.count("\n", 0, m.start()) + 1 for m in _TOKENS.finditer(source)}
        self._lines = sorted(lines)
        self._module_assigns = _assigned_values(tree.body)
        self._module_keys = _dict_keys(tree.body)
        self._scan(tree, None, None)

    def _holds_token(self, node: ast.AST) -> bool:
        first, end = node.lineno, getattr(node, "end_lineno", None) or node.lineno
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first = min(first, *(d.lineno for d in decorators))
        i = bisect.bisect_left(self._lines, first)
        return i < len(self._lines) and self._lines[i] <= end

    # -------------------------------------------------------------- resolution
    def resolve(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _could_be_class(self, node: ast.AST, func) -> bool:
        """`node` may refer to a loading model class: imported, or a local alias (`M = A if c else B`)."""
        qname = self.resolve(node)
        if qname is not None:
            return is_loading_model_class(qname)
        if isinstance(node, ast.Name) and node.id in self.hf_subclasses:
            return True
        if isinstance(node, ast.Name) and node.id not in self.imports:
            values = self._values(node.id, func)
            return any(isinstance(v, (ast.Name, ast.Attribute, ast.IfExp)) for v in values)
        return False

    def _values(self, name: str, func) -> list[ast.AST]:
        if func is not None:
            local = func._compat_assigns.get(name)
            if local is not None:
                return local
            if name in func._compat_params:
                return []
        return self._module_assigns.get(name, [])

    def _could_be_typed(self, node: ast.AST, func, cls) -> bool:
        """`node` may get a known kind (model, args, trainer) in the libcst pass."""
        if isinstance(node, ast.Call):
            return True
        if isinstance(node, ast.Name):
            if node.id in ("self", "cls"):
                return False
            if func is not None and node.id in func._compat_params:
                ann = func._compat_params[node.id]
                if ann is None:
                    return False
                qname = self.resolve(ann)
                return qname is not None and is_hf(qname)
            values = self._values(node.id, func)
            return any(isinstance(v, (ast.IfExp, _Unpacked)) or self._typed_call(v) for v in values)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return (
                    node.attr in ("args", "model")
                    and cls is not None
                    and any((self.resolve(b) or "").split(".", 1)[0] in HF_ROOTS for b in cls.bases)
                )
            return node.attr in ("args", "model") and self._could_be_typed(node.value, func, cls)
        if isinstance(node, ast.IfExp):
            return self._could_be_typed(node.body, func, cls) or self._could_be_typed(node.orelse, func, cls)
        return False

    def _typed_call(self, value: ast.AST) -> bool:
        """A call whose result the libcst pass may type (False for argparse's parse_args(), a function or class
        imported from another library, a load from another library's class)."""
        if not isinstance(value, ast.Call):
            return False
        f = value.func
        if isinstance(f, ast.Attribute) and f.attr in ("parse_args", "parse_known_args"):
            return False
        qname = self.resolve(f)
        if qname is not None and not is_hf(qname) and qname != "dataclasses.replace":
            return False
        if isinstance(f, ast.Attribute) and f.attr in LOAD_METHODS:
            owner = self.resolve(f.value)
            if owner is not None and not is_hf(owner):
                return False
        return True

    # -------------------------------------------------------------- the scan
    def _scan(self, node: ast.AST, func, cls) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not self._holds_token(
                child
            ):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                params = {}
                args = child.args
                for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                    params[a.arg] = a.annotation
                for a in (args.vararg, args.kwarg):
                    if a is not None:
                        params[a.arg] = None
                child._compat_params = params  # type: ignore[attr-defined]
                body = child.body if isinstance(child.body, list) else []
                child._compat_assigns = _assigned_values(body)  # type: ignore[attr-defined]
                child._compat_keys = _dict_keys(body)  # type: ignore[attr-defined]
                self._scan(child, child, cls)
                continue
            if isinstance(child, ast.ClassDef):
                self._scan(child, func, child)
                continue
            if isinstance(child, ast.Call):
                self._call(child, func, cls)
            elif isinstance(child, ast.Attribute):
                self._attribute(child, func, cls)
            elif isinstance(child, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr.endswith("model_init_kwargs"):
                        self.flags["torch_dtype"] = self.flags["kbit"] = True
            elif isinstance(child, ast.Subscript):
                if isinstance(child.value, ast.Attribute) and child.value.attr.endswith("model_init_kwargs"):
                    self.flags["torch_dtype"] = True
            self._scan(child, func, cls)

    def _star_keys(self, call: ast.Call, func) -> set[str]:
        """The literal keys of the same-scope dicts passed to `call` with `**name`."""
        keys_map = func._compat_keys if func is not None else self._module_keys
        found: set[str] = set()
        for k in call.keywords:
            if k.arg is None and isinstance(k.value, ast.Name):
                found |= keys_map.get(k.value.id, set())
        return found

    def _call(self, call: ast.Call, func, cls) -> None:
        keywords = {k.arg for k in call.keywords}
        if None in keywords:
            keywords |= self._star_keys(call, func)
        star = False
        f = call.func
        if isinstance(f, ast.Attribute) and f.attr in LOAD_METHODS:
            loadish = self._could_be_class(f.value, func)
            if "torch_dtype" in keywords or star:
                self.flags["torch_dtype"] |= loadish
                self.strict_flags["torch_dtype"] |= "torch_dtype" in keywords
            if f.attr == "from_pretrained" and (keywords & {"load_in_4bit", "load_in_8bit"} or star):
                self.flags["kbit"] |= loadish
                self.strict_flags["kbit"] |= bool(keywords & {"load_in_4bit", "load_in_8bit"})
        if isinstance(f, ast.Attribute) and f.attr in (
            "gradient_checkpointing_enable",
            "gradient_checkpointing_disable",
        ):
            self.flags["activation"] |= self._could_be_typed(f.value, func, cls)
            self.strict_flags["activation"] = True
        if keywords & {"gradient_checkpointing", "gradient_checkpointing_kwargs"} or star:
            qname = self.resolve(f) or ""
            if is_training_args_class(qname) or qname == "dataclasses.replace":
                self.flags["activation"] = True
            elif isinstance(f, ast.Attribute) and f.attr == "set_training":
                self.flags["activation"] |= self._could_be_typed(f.value, func, cls)
        if keywords & {"torch_dtype", "model_kwargs"} or star:
            qname = self.resolve(f) or ""
            if (root(qname) == "transformers" and last(qname) == "pipeline") or (
                isinstance(f, ast.Name)
                and f.id not in self.imports
                and any(
                    isinstance(v, ast.IfExp) or last(self.resolve(v) or "") == "pipeline"
                    for v in self._values(f.id, func)
                )
            ):  # transformers.pipeline, or a local alias of it
                self.flags["torch_dtype"] = True
                self.flags["kbit"] |= "model_kwargs" in keywords
        if any(k and k.endswith("model_init_kwargs") for k in keywords):
            if root(self.resolve(f) or "") == "trl" or (isinstance(f, ast.Name) and f.id not in self.imports):
                self.flags["torch_dtype"] = self.flags["kbit"] = True

    def _attribute(self, node: ast.Attribute, func, cls) -> None:
        if node.attr == "is_gradient_checkpointing":
            self.flags["activation"] |= self._could_be_typed(node.value, func, cls)
            self.strict_flags["activation"] = True
        elif node.attr in ("gradient_checkpointing", "gradient_checkpointing_kwargs"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                self.flags["activation"] |= self._could_be_typed(node.value, func, cls)
                self.strict_flags["activation"] = True


class _Unpacked(ast.AST):
    """Marker value: the name is one element of a tuple assignment (`a, b = parser.parse_...()`)."""


def _dict_keys(body: list[ast.stmt]) -> dict[str, set[str]]:
    """name -> the literal keys it is given or asked for in `body` (dict displays, dict(...), d["k"], d.get("k"),
    d.update(k=...)), not descending into nested functions or classes."""
    out: dict[str, set[str]] = {}

    def keys_of(value: ast.AST) -> set[str]:
        if isinstance(value, ast.Dict):
            return {k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
            found = {k.arg for k in value.keywords if k.arg}
            for a in value.args:
                found |= keys_of(a)
            return found
        return set()

    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, set()).update(keys_of(node.value))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                out.setdefault(node.value.id, set()).add(node.slice.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            name = node.func.value.id
            if node.func.attr == "update":
                found = {k.arg for k in node.keywords if k.arg}
                for a in node.args:
                    found |= keys_of(a)
                out.setdefault(name, set()).update(found)
            elif node.func.attr in ("get", "pop", "setdefault") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    out.setdefault(name, set()).add(first.value)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _assigned_values(body: list[ast.stmt]) -> dict[str, list[ast.AST]]:
    """name -> the values assigned to it in `body` (not descending into nested functions or classes)."""
    out: dict[str, list[ast.AST]] = {}
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(node.value)
                elif isinstance(t, (ast.Tuple, ast.List)):
                    for el in t.elts:
                        if isinstance(el, ast.Name):
                            out.setdefault(el.id, []).append(_Unpacked())
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out.setdefault(node.target.id, []).append(node.value)
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            out.setdefault(node.target.id, []).append(node.value)
        stack.extend(ast.iter_child_nodes(node))
    return out


_TOKENS = re.compile(r"torch_dtype|load_in_[48]bit|gradient_checkpointing|model_init_kwargs")


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested blocks and defs included (not expressions: much fewer nodes than ast.walk)."""
    stack = list(body)
    while stack:
        node = stack.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, name, None)
            if isinstance(block, list):
                stack.extend(block)


_AST_CACHE: list = [None, None]


def ast_facts(source: str) -> AstFacts | None:
    """The facts of `source` (None when CPython cannot parse it: then libcst decides and reports)."""
    if _AST_CACHE[0] is source:
        return _AST_CACHE[1]
    try:
        facts: AstFacts | None = AstFacts(ast.parse(source), source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        facts = None
    _AST_CACHE[0], _AST_CACHE[1] = source, facts
    return facts


def ast_says(source: str, rule: str, strict: bool) -> bool:
    facts = ast_facts(source)
    if facts is None:
        return True
    return facts.flags[rule] or (strict and facts.strict_flags[rule])
