"""transformers-torch-dtype: `torch_dtype=` -> `dtype=` where the keyword reaches transformers.

transformers 4.56 renamed the loading keyword `torch_dtype` to `dtype` (`torch_dtype` is still accepted, with a
deprecation log); before 4.56, `dtype=` breaks config serialisation, hence the target gate transformers >= 4.56.

Rewritten: the keyword in `X.from_pretrained/from_config/_from_config(...)` where `X` is a transformers model class
(Auto* or concrete, any import form or alias, also through `M = AutoModel` and `cls = A if c else B`), TRL's
value-head models and peft's `AutoPeftModel*`; `transformers.pipeline(...)`, and the keys of its `model_kwargs`;
the keys of TRL's `*model_init_kwargs` dicts (config keyword or `args.model_init_kwargs = ...`); and the key
`"torch_dtype"` of a dict that flows, in the same scope, into one of those through `**` (dict literal, `dict(...)`,
`d["torch_dtype"] = ...`, `d.update(...)`), together with the reads of that key from the same dict.
Left alone: attributes (`config.torch_dtype`), parameters and fields named `torch_dtype`, other libraries
(diffusers, unsloth, ... still take `torch_dtype`), unknown receivers (a TODO with --strict), dicts that also go
somewhere else (a TODO).
"""

from __future__ import annotations

import re

import libcst as cst

from codemods._hf import (
    HF_ROOTS,
    LOAD_METHODS,
    DictFlow,
    HFRule,
    is_hf,
    is_loading_model_class,
    keyword_arg,
    last,
    literal_string,
    renamed_string,
    root,
)

OLD, NEW = "torch_dtype", "dtype"
KEYS = frozenset({OLD})
_INIT_KWARGS = re.compile(r"^(?:\w+_)?model_init_kwargs$")


class TransformersTorchDtype(HFRule):
    id = "transformers-torch-dtype"
    summary = (
        "torch_dtype= -> dtype= in from_pretrained/from_config/pipeline/TRL model_init_kwargs (and same-scope dicts)"
    )
    triggers = ("torch_dtype",)
    trigger_regex = re.compile(r"\btorch_dtype[ \t]*=(?!=)|[\"']torch_dtype[\"']")
    target = {"transformers": "4.56"}

    ast_key = "torch_dtype"

    # ------------------------------------------------------------------ classification
    def sink(self, call: cst.Call) -> str | None:
        """ "load" (a transformers loading call), "pipeline", "trl_config" (a TRL config class: its
        *model_init_kwargs keywords), "foreign"/"unknown" (a from_pretrained-like call we cannot vouch for), None."""
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in LOAD_METHODS:
            recv = self.kind_of(func.value)
            if recv is not None and recv.what == "ref":
                if is_loading_model_class(recv.qname):
                    return "load"
                return "foreign" if not is_hf(recv.qname) else None
            if isinstance(func.value, cst.Name) and func.value.value in ("cls", "self"):
                return None
            return "unknown" if recv is None else "foreign"
        if not any(
            a.star == "**"
            or (
                a.keyword is not None
                and (a.keyword.value in ("torch_dtype", "model_kwargs") or _INIT_KWARGS.match(a.keyword.value))
            )
            for a in call.args
        ):
            return None  # cheap: nothing this rule could act on in this call
        qname = self.ref_qname(func)
        if qname is None:
            return None
        if root(qname) == "transformers" and last(qname) == "pipeline":
            return "pipeline"
        if root(qname) == "trl" and last(qname).endswith("Config"):
            return "trl_config"
        return None

    def _is_sink(self, use: cst.CSTNode, container: cst.CSTNode) -> bool | None:
        if isinstance(use, cst.Assign):
            return all(
                isinstance(t.target, cst.Attribute) and _INIT_KWARGS.match(t.target.attr.value) for t in use.targets
            )
        if not isinstance(use, cst.Arg) or not isinstance(container, cst.Call):
            return None
        kind = self.sink(container)
        if use.star == "**":
            if kind in ("load", "pipeline"):
                return True
            return False if kind in ("foreign", "unknown") else None
        if use.keyword is not None:
            if kind == "pipeline" and use.keyword.value == "model_kwargs":
                return True
            if kind == "trl_config" and _INIT_KWARGS.match(use.keyword.value):
                return True
        return None

    # ------------------------------------------------------------------ plan
    def plan(self, module: cst.Module) -> None:
        self._flows_done: set[tuple[int, str]] = set()
        attr_stores: dict[str, list[cst.SimpleString]] = {}
        attr_reads: set[str] = set()
        for node in list(self.all_nodes()):
            if isinstance(node, cst.Call):
                self._plan_call(node)
            elif isinstance(node, cst.Assign):
                if all(
                    isinstance(t.target, cst.Attribute) and _INIT_KWARGS.match(t.target.attr.value)
                    for t in node.targets
                ):
                    self._plan_dict_value(node.value, node)
            elif isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute):
                if _INIT_KWARGS.match(node.value.attr.value) and len(node.slice) == 1:
                    index = node.slice[0].slice
                    if isinstance(index, cst.Index) and literal_string(index.value) == OLD:
                        text = module.code_for_node(node.value)
                        if isinstance(self.parent(node), cst.AssignTarget):
                            attr_stores.setdefault(text, []).append(index.value)
                        else:
                            attr_reads.add(text)
        for text, strings in attr_stores.items():
            for string in strings:
                if text in attr_reads:
                    self.add_todo(
                        string,
                        f'{text}["torch_dtype"] is also read here; rename the key to "dtype" '
                        "in the writes and the reads together",
                    )
                else:
                    self._rename_string(string)

    def _plan_call(self, call: cst.Call) -> None:
        kind = self.sink(call)
        if kind is None:
            return
        if self.in_fstring(call):
            return
        if kind in ("load", "pipeline"):
            arg = keyword_arg(call, OLD)
            if arg is not None:
                if keyword_arg(call, NEW) is not None:
                    self.add_todo(call, "both torch_dtype= and dtype= are passed; keep dtype= only")
                else:
                    self.edit(arg, lambda a: a.with_changes(keyword=cst.Name(NEW)), "torch_dtype= -> dtype=")
            for a in call.args:
                if a.star == "**" and isinstance(a.value, cst.Name):
                    self._plan_flow(a.value)
            if kind == "pipeline":
                mk = keyword_arg(call, "model_kwargs")
                if mk is not None:
                    self._plan_dict_value(mk.value, call)
        elif kind == "trl_config":
            for a in call.args:
                if a.keyword is not None and _INIT_KWARGS.match(a.keyword.value):
                    self._plan_dict_value(a.value, call)
        elif (
            kind == "unknown"
            and self.settings.strict
            and self.imported_roots() & HF_ROOTS
            and keyword_arg(call, OLD) is not None
        ):
            self.add_todo(
                call,
                "torch_dtype= on a receiver of unknown type; if it is a transformers model class "
                "(>= 4.56), write dtype=",
            )

    def _plan_dict_value(self, value: cst.BaseExpression, anchor: cst.CSTNode) -> None:
        """A dict handed to transformers as a whole (TRL model_init_kwargs, pipeline model_kwargs)."""
        if isinstance(value, cst.Name):
            self._plan_flow(value)
            return
        flow = DictFlow("<literal>")
        if not self._dict_literal_keys(flow, value, KEYS):
            return
        if not flow.key_defs:
            return
        if NEW in flow.all_keys:
            self.add_todo(anchor, 'both "torch_dtype" and "dtype" keys are given; keep "dtype" only')
            return
        self._rename_flow(flow)

    def _plan_flow(self, name: cst.Name) -> None:
        scope = self.scope_of(name)
        key = (id(scope), name.value)
        if key in self._flows_done:
            return
        self._flows_done.add(key)
        flow = self.dict_flow(name, KEYS, self._is_sink)
        if flow is None or not flow.sinks or not flow.key_nodes:
            return
        first = self.first_use(flow)
        if flow.escapes:
            where = flow.describe(flow.escapes[0])
            self.add_todo(
                first,
                f'the dict {flow.name} also goes to {where}; rename its "torch_dtype" key to '
                '"dtype" by hand if every consumer is transformers >= 4.56',
            )
            return
        if NEW in flow.all_keys:
            self.add_todo(first, f'the dict {flow.name} has both "torch_dtype" and "dtype" keys; keep "dtype"')
            return
        if not flow.visible and flow.reads:
            self.add_todo(
                first,
                f'the dict {flow.name} comes from outside this scope and its "torch_dtype" key '
                'is read here; rename it to "dtype" where the dict is built',
            )
            return
        self._rename_flow(flow)

    # ------------------------------------------------------------------ edits
    def _rename_flow(self, flow: DictFlow) -> None:
        for key, node, _container in flow.key_defs:
            if isinstance(node, cst.DictElement):
                self._rename_string(node.key)
            elif isinstance(node, cst.Arg):
                self.edit(node, lambda a: a.with_changes(keyword=cst.Name(NEW)), "torch_dtype= -> dtype= (dict)")
        for key, sub in flow.stores:
            self._rename_string(sub.slice[0].slice.value)
        for key, node in flow.reads:
            if isinstance(node, cst.Subscript):
                node = node.slice[0].slice.value
            self._rename_string(node)

    def _rename_string(self, node: cst.CSTNode) -> None:
        if isinstance(node, cst.SimpleString) and not self.planned(node):
            self.edit(node, lambda s: renamed_string(s, OLD, NEW), '"torch_dtype" -> "dtype"')
