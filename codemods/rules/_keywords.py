"""Plumbing shared by the rules that rename or move keywords of transformers/TRL calls.

- `loading_call(ctx, call)`: what a `from_pretrained`/`from_config`/`pipeline(...)`/TRL-config call is ("load",
  "pipeline", "trl_config", "foreign", "unknown" or None);
- `Renamer`: rename keywords (`torch_dtype=` -> `dtype=`) in the calls that reach a sink, and the same keys in the
  dicts that flow into those calls in the same scope (`d = {...}`, `dict(...)`, `d["k"] = v`, `d.update(...)`,
  the reads of that key), with one TODO where that is not safe (the dict also goes elsewhere, it has both keys, it
  comes from outside the scope and its key is read here).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping

from codemods import hf
from codemods.analysis import string_value
from codemods.flows import (
    DictFlow,
    attribute_flow,
    describe,
    dict_flow,
    literal_keys,
    self_attribute,
)
from codemods.rule import FileContext

INIT_KWARGS = re.compile(r"^(?:\w+_)?model_init_kwargs$")  # TRL's model_init_kwargs, ref_/teacher_model_init_kwargs
IMPORTS_HF = re.compile(r"^[ \t]*(?:from|import)[ \t]+(?:transformers|trl|peft)\b", re.M)

Sink = Callable[[ast.AST, ast.AST], "bool | None"]


def short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Libraries with transformers-like loaders that keep their own keywords (torch_dtype=, load_in_4bit=).
_FOREIGN_LOADERS = frozenset(
    {"diffusers", "unsloth", "vllm", "sentence_transformers", "optimum", "auto_gptq", "awq", "gptqmodel", "mlx_lm",
     "ctransformers", "llama_cpp", "open_clip", "timm", "modelscope", "swift", "lmdeploy", "tensorrt_llm"}
)  # fmt: skip


def _known_foreign(qname: str) -> bool:
    return hf.root(qname) in _FOREIGN_LOADERS


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def self_class_role(ctx: FileContext, recv: ast.AST) -> str | None:
    """`cls.from_pretrained(...)`/`self.from_pretrained(...)` inside a class: "load" when the class derives from a
    transformers model class, None when it is the user's own method, "unknown" when its bases are not known."""
    info = ctx.kinds.enclosing_class_info(recv)
    if info is None:
        return None
    base = info.hf_base
    if base is not None:
        if not hf.is_loading_model_class(base):
            return None
        return "unknown" if info.method("from_pretrained") is not None else "load"
    if all(b is not None and b.what in ("local", "foreign") for b in info.bases) or not info.node.bases:
        return None
    return "unknown"


def loading_call(ctx: FileContext, call: ast.Call, keywords: frozenset[str] = frozenset()) -> str | None:
    """ "load" (a transformers loading call: from_pretrained/from_config/_from_config on a model class), "pipeline"
    (transformers.pipeline), "trl_config" (a TRL config class: its *model_init_kwargs keywords), "foreign" (another
    library's class), "unknown" (a from_pretrained-like call whose receiver we cannot type), None (none of these).
    `keywords`: for calls that are not attribute loads, only those with one of these keywords (or a `**`) are typed."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in hf.LOAD_METHODS:
        recv = func.value
        if isinstance(recv, ast.Name) and recv.id in ("cls", "self") and ctx.analysis.enclosing_class(recv):
            return self_class_role(ctx, recv)
        kind = ctx.kinds.kind_of(recv)
        if kind is not None and kind.what == "ref":
            if hf.is_loading_model_class(kind.qname):
                if kind.cls is not None and kind.cls.method(func.attr) is not None:
                    return "unknown"  # the user's subclass overrides the loader: it may not take the new keyword
                return "load"
            if hf.is_hf(kind.qname):
                return None
            if kind.cls is None and hf.looks_like_model_class(kind.qname) and not _known_foreign(kind.qname):
                return "unknown"  # `from somewhere_we_cannot_see import BloomForCausalLM`
            return "foreign"
        if kind is not None and kind.what == "local":
            return None  # the user's own class with a from_pretrained of its own
        if kind is None:
            return "unknown"
        return "foreign"
    if keywords and not any(k.arg is None or k.arg in keywords or INIT_KWARGS.match(k.arg) for k in call.keywords):
        return None
    qname = ctx.kinds.ref_qname(func)
    if qname is None:
        return None
    if hf.root(qname) == "transformers" and hf.last(qname) == "pipeline":
        return "pipeline"
    if hf.root(qname) == "trl" and hf.last(qname).endswith("Config"):
        return "trl_config"
    return None


def loading_calls(ctx: FileContext, keywords: tuple[str, ...]) -> list[ast.Call]:
    """The calls that pass one of `keywords`, a `**` dict, `model_kwargs=` or a TRL `*model_init_kwargs=`, in
    source order: the candidates of the loading rules."""
    a = ctx.analysis
    calls: dict[int, ast.Call] = {}
    for name in keywords:
        for kw in a.keywords.get(name, ()):
            call = a.call_of_keyword(kw)
            if call is not None:
                calls[id(call)] = call
    for call in a.calls:
        if any(k.arg is None or k.arg == "model_kwargs" or INIT_KWARGS.match(k.arg) for k in call.keywords):
            calls[id(call)] = call
    return sorted(calls.values(), key=lambda c: (c.lineno, c.col_offset))


def init_kwargs_assignments(ctx: FileContext) -> list[ast.Assign]:
    """`args.model_init_kwargs = {...}` (and ref_/teacher_): a dict TRL hands to from_pretrained whole."""
    a = ctx.analysis
    out = []
    for attr_name, nodes in a.attributes.items():
        if not INIT_KWARGS.match(attr_name):
            continue
        for node in nodes:
            parent = a.parent(node)
            if isinstance(parent, ast.Assign) and node in parent.targets and is_init_kwargs_assign(parent):
                out.append(parent)
    return out


def is_init_kwargs_assign(node: ast.AST) -> bool:
    return isinstance(node, ast.Assign) and all(
        isinstance(t, ast.Attribute) and INIT_KWARGS.match(t.attr) for t in node.targets
    )


def loading_sink(sink: Callable[[ast.Call], str | None], star_sinks: frozenset[str]) -> Sink:
    """The `is_sink` test of a loading rule: `**d` into a call whose kind is in `star_sinks`; `model_kwargs=d` of a
    pipeline; `*model_init_kwargs=d` of a TRL config; `args.model_init_kwargs = d`."""

    def is_sink(use: ast.AST, container: ast.AST) -> bool | None:
        if isinstance(use, ast.Assign):
            return is_init_kwargs_assign(use)
        if not isinstance(use, ast.keyword) or not isinstance(container, ast.Call):
            return None
        kind = sink(container)
        if use.arg is None:
            if kind in star_sinks:
                return True
            return False if kind in ("foreign", "unknown", "pipeline") else None
        if kind == "pipeline" and use.arg == "model_kwargs":
            return True
        if kind == "trl_config" and INIT_KWARGS.match(use.arg):
            return True
        return None

    return is_sink


class Renamer:
    """Renames keys `renames` (old -> new) in calls and same-scope dict flows, for one rule.

    `is_sink(use, container)`: see codemods.flows (True: a sink; False: an escape; None: not sink-shaped)."""

    def __init__(self, ctx: FileContext, renames: Mapping[str, str], is_sink: Sink, label: str) -> None:
        self.ctx = ctx
        self.renames = dict(renames)
        self.keys = frozenset(renames)
        self.is_sink = is_sink
        self.label = label  # e.g. '"torch_dtype"', for TODO comments
        self._flows_done: set[tuple[int, str]] = set()

    # ------------------------------------------------------------------ a call's own keywords
    def keywords(self, call: ast.Call) -> None:
        for kw in call.keywords:
            if kw.arg in self.renames:
                new = self.renames[kw.arg]
                if keyword(call, new) is not None:
                    self.ctx.todo(
                        call,
                        f"both {kw.arg}= and {new}= are passed; keep {new}= only",
                        "old and new names both given; keep the new one",
                    )
                else:
                    self.ctx.rename_keyword(kw, new)

    def stars(self, call: ast.Call) -> None:
        """Follow every `**name` and `**self.attr` of the call."""
        for kw in call.keywords:
            if kw.arg is None and isinstance(kw.value, ast.Name):
                self.flow(kw.value)
            elif kw.arg is None and isinstance(kw.value, ast.Attribute):
                self.attribute(kw.value)

    def attribute(self, node: ast.Attribute) -> None:
        """`f(**self.kwargs)`: the dict filled across the class's methods. Renamed when every use is visible and
        reaches a sink; otherwise each key use is reported (a dict shared across methods is not ours to guess)."""
        a = self.ctx.analysis
        cls = self_attribute(a, node)
        if cls is None or (id(cls), node.attr) in self._flows_done:
            return
        self._flows_done.add((id(cls), node.attr))
        flow = attribute_flow(a, cls, node.attr, self.keys, self.is_sink)
        if not flow.sinks or not flow.key_nodes:
            return
        clash = any(self.renames[k] in flow.all_keys for k, _ in flow.key_nodes)
        if flow.escapes or clash or (not flow.visible and flow.reads):
            where = "elsewhere" if not flow.escapes else f"to {short(describe(a, flow.escapes[0]), 28)}"
            for key, use in flow.key_nodes:
                self.ctx.diagnose(
                    use,
                    f'{flow.name}["{key}"] also goes {where}; rename it to "{self.renames[key]}" by hand',
                    f"{flow.name} also goes elsewhere; rename its key by hand",
                    "this dict also goes elsewhere; rename its key by hand",
                )
            return
        self.rename_flow(flow)

    # ------------------------------------------------------------------ dicts
    def dict_value(self, value: ast.AST, anchor: ast.AST) -> None:
        """A dict handed over as a whole (TRL model_init_kwargs, pipeline model_kwargs): a literal or a name."""
        if isinstance(value, ast.Name):
            self.flow(value)
            return
        flow = DictFlow("<literal>")
        if not literal_keys(flow, value, self.keys, self.ctx.analysis) or not flow.key_defs:
            return
        if any(self.renames[k] in flow.all_keys for k, _, _ in flow.key_defs):
            new = next(self.renames[k] for k, _, _ in flow.key_defs)
            self.ctx.todo(
                anchor,
                f"both the old and the new key ({new}) are given; keep {new}",
                "old and new keys given; keep the new one",
            )
            return
        self.rename_flow(flow)

    def flow(self, name: ast.Name) -> DictFlow | None:
        """Plan the renames for the dict behind `name` (once per dict); returns the flow when it was renamed."""
        a = self.ctx.analysis
        found = a.reaching(name)
        scope = found[0].scope if found else None
        key = (id(scope), name.id)
        if scope is None or key in self._flows_done:
            return None
        self._flows_done.add(key)
        flow = dict_flow(a, name, self.keys, self.is_sink)
        if flow is None or not flow.sinks or not flow.key_nodes:
            return None
        first = flow.first_use()
        who = short(flow.name, 20)
        if flow.escapes:
            where = short(describe(a, flow.escapes[0]), 28)
            self.ctx.todo(
                first,
                f"{who} also goes to {where}; rename its {self.label} key by hand",
                f"{who} also goes to {where}; rename its key by hand",
                f"{who} also goes elsewhere; rename by hand",
                "this dict also goes elsewhere; rename by hand",
            )
            return None
        if any(self.renames[k] in flow.all_keys for k, _ in flow.key_nodes):
            self.ctx.todo(
                first,
                f"{who} has both the old and the new key; keep the new one",
                f"{who} has old and new keys; keep the new",
            )
            return None
        if not flow.visible and flow.reads:
            self.ctx.todo(
                first,
                f"{who} comes from outside this scope; rename {self.label} where it is built",
                f"{who} comes from outside; rename the key where it is built",
                f"{who} comes from outside; rename where built",
            )
            return None
        self.rename_flow(flow)
        return flow

    def rename_flow(self, flow: DictFlow) -> None:
        for key, node, _container in flow.key_defs:
            if isinstance(node, ast.keyword):
                self.ctx.rename_keyword(node, self.renames[key], f"{key}= -> {self.renames[key]}= (dict)")
            else:
                self.rename_string(node, key)
        for key, sub in flow.stores:
            self.rename_string(sub.slice, key)
        for key, node in flow.reads:
            self.rename_string(node, key)

    def rename_string(self, node: ast.AST, key: str) -> None:
        if string_value(node) == key and isinstance(node, ast.Constant):
            new = self.renames[key]
            self.ctx.rename_string(node, key, new)
