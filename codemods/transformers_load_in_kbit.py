"""transformers-load-in-kbit: `from_pretrained(load_in_4bit=...)` -> `quantization_config=BitsAndBytesConfig(...)`.

transformers 5.0 removed the `load_in_4bit=`/`load_in_8bit=` keywords of `from_pretrained` (TypeError: unexpected
keyword argument); `quantization_config=BitsAndBytesConfig(load_in_4bit=True, ...)` works from 4.30 on, so the rule
is valid for any target transformers >= 4.30.

- `load_in_4bit=True` (or `load_in_8bit=True`) and the `bnb_4bit_*`/`llm_int8_*` keywords beside it (4.x folded
  those into the config) -> one `quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_...)`; the import
  `from transformers import BitsAndBytesConfig` is added unless the name (or an alias of it) is already imported.
- a flag whose value is not a literal (`load_in_8bit=args.load_in_8bit`) ->
  `quantization_config=BitsAndBytesConfig(load_in_8bit=args.load_in_8bit) if args.load_in_8bit else None`
  (a BitsAndBytesConfig with both flags False would still quantize, to 4-bit).
- `load_in_4bit=False` alone is dropped (it is the default, and transformers 5 rejects the keyword).
- a `quantization_config=` already passed: the redundant flags are dropped when it is a `BitsAndBytesConfig(...)`
  call (inline, or a same-scope variable) that says the same; otherwise a TODO.
- the same for the keys of a same-scope dict that reaches `from_pretrained` through `**`, TRL's
  `*model_init_kwargs` and pipeline's `model_kwargs` (dict literal, `dict(...)`, `d["load_in_8bit"] = x`).
Left alone: other libraries that still take the keywords (unsloth's `FastLanguageModel`, auto-gptq, ...),
`BitsAndBytesConfig(load_in_4bit=...)` itself, config objects and dataclass fields, CLI flags; unknown receivers
(a TODO with --strict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import ImportAssignment

from codemods._hf import (
    HF_ROOTS,
    HFRule,
    is_hf,
    is_loading_model_class,
    keyword_arg,
    last,
    literal_string,
    root,
)

FLAGS = ("load_in_4bit", "load_in_8bit")
BNB_KWARGS = (
    "llm_int8_threshold", "llm_int8_skip_modules", "llm_int8_enable_fp32_cpu_offload", "llm_int8_has_fp16_weight",
    "bnb_4bit_compute_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_quant_storage",
)  # fmt: skip
KEYS = frozenset(FLAGS + BNB_KWARGS)
QC = "quantization_config"
BNB = "BitsAndBytesConfig"
_INIT_KWARGS = re.compile(r"^(?:\w+_)?model_init_kwargs$")
_NO_SPACE = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


class _Todo(Exception):
    pass


@dataclass
class _Group:
    """The kbit items of one argument list / dict display: indices into its args/elements."""

    flags: list[tuple[int, str, cst.BaseExpression]]
    bnbs: list[tuple[int, str, cst.BaseExpression]]
    qc: tuple[int, cst.BaseExpression] | None


def _truth(node: cst.BaseExpression) -> bool | None:
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    return None


def _simple(node: cst.BaseExpression) -> bool:
    """Side-effect free enough to be evaluated twice (`X` in `BitsAndBytesConfig(load_in_4bit=X) if X else None`)."""
    if isinstance(node, cst.Name):
        return True
    if isinstance(node, cst.Attribute):
        return _simple(node.value)
    if isinstance(node, cst.Subscript):
        if not _simple(node.value) or len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
            return False
        return isinstance(node.slice[0].slice.value, (cst.SimpleString, cst.Integer))
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
        return _simple(node.expression)
    if isinstance(node, cst.Comparison):
        return _simple(node.left) and all(
            _simple(t.comparator) or isinstance(t.comparator, (cst.SimpleString, cst.Integer)) for t in node.comparisons
        )
    return False


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _same(a: cst.BaseExpression, b: cst.BaseExpression) -> bool:
    return " ".join(_code(a).split()) == " ".join(_code(b).split())


class TransformersLoadInKbit(HFRule):
    id = "transformers-load-in-kbit"
    summary = "from_pretrained(load_in_4bit=/load_in_8bit=) -> quantization_config=BitsAndBytesConfig(...)"
    triggers = ("load_in_",)
    trigger_regex = re.compile(r"\bload_in_[48]bit[ \t]*=(?!=)|[\"']load_in_[48]bit[\"']")
    target = {"transformers": "4.30"}

    ast_key = "kbit"

    # ------------------------------------------------------------------ classification
    def sink(self, call: cst.Call) -> str | None:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
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
                and (a.keyword.value in FLAGS + ("model_kwargs",) or _INIT_KWARGS.match(a.keyword.value))
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
            if kind == "load":
                return True
            return False if kind in ("foreign", "unknown", "pipeline") else None
        if use.keyword is not None:
            if kind == "pipeline" and use.keyword.value == "model_kwargs":
                return True
            if kind == "trl_config" and _INIT_KWARGS.match(use.keyword.value):
                return True
        return None

    # ------------------------------------------------------------------ plan
    def plan(self, module: cst.Module) -> None:
        self._flows_done: set[tuple[int, str]] = set()
        self._local_imports: set[int] = set()
        self._top_import: bool | None = None
        self._module = module
        for node in list(self.all_nodes()):
            if isinstance(node, cst.Call):
                self._plan_call(node)
            elif isinstance(node, cst.Assign):
                if all(
                    isinstance(t.target, cst.Attribute) and _INIT_KWARGS.match(t.target.attr.value)
                    for t in node.targets
                ):
                    self._plan_dict_value(node.value, node)

    def _plan_call(self, call: cst.Call) -> None:
        kind = self.sink(call)
        if kind is None or self.in_fstring(call):
            return
        if kind == "load":
            self._plan_group(call, call)
            for a in call.args:
                if a.star == "**" and isinstance(a.value, cst.Name):
                    self._plan_flow(a.value)
        elif kind == "pipeline":
            mk = keyword_arg(call, "model_kwargs")
            if mk is not None:
                self._plan_dict_value(mk.value, call)
        elif kind == "trl_config":
            for a in call.args:
                if a.keyword is not None and _INIT_KWARGS.match(a.keyword.value):
                    self._plan_dict_value(a.value, call)
        elif kind == "unknown" and self.settings.strict and self.imported_roots() & HF_ROOTS:
            if any(keyword_arg(call, f) is not None for f in FLAGS):
                self.add_todo(
                    call,
                    "load_in_4bit=/load_in_8bit= on a receiver of unknown type; if it is a "
                    "transformers model class, pass quantization_config=BitsAndBytesConfig(...)",
                )

    def _plan_dict_value(self, value: cst.BaseExpression, anchor: cst.CSTNode) -> None:
        if isinstance(value, cst.Name):
            self._plan_flow(value)
        elif isinstance(value, cst.Dict) or _is_dict_call(value):
            self._plan_group(value, anchor)

    # ------------------------------------------------------------------ one argument list / dict display
    def _items(self, container: cst.CSTNode) -> list[tuple[str | None, cst.BaseExpression | None]]:
        out: list[tuple[str | None, cst.BaseExpression | None]] = []
        if isinstance(container, cst.Call):
            for a in container.args:
                out.append((a.keyword.value if a.keyword is not None else None, a.value))
        elif isinstance(container, cst.Dict):
            for el in container.elements:
                if isinstance(el, cst.DictElement):
                    out.append((literal_string(el.key), el.value))
                else:
                    out.append((None, None))
        return out

    def _group(self, container: cst.CSTNode) -> _Group | None:
        flags, bnbs, qc = [], [], None
        for i, (key, value) in enumerate(self._items(container)):
            if key in FLAGS:
                flags.append((i, key, value))
            elif key in BNB_KWARGS:
                bnbs.append((i, key, value))
            elif key == QC:
                qc = (i, value)
        return _Group(flags, bnbs, qc) if flags else None

    def _plan_group(self, container: cst.CSTNode, anchor: cst.CSTNode) -> None:
        group = self._group(container)
        if group is None:
            return
        try:
            fn, message = self._group_edit(container, group)
        except _Todo as todo:
            self.add_todo(anchor, str(todo))
            return
        self.edit(container, fn, message)

    def _group_edit(self, container: cst.CSTNode, group: _Group):
        drop = {i for i, _, _ in group.bnbs}
        if group.qc is not None:
            config = self._bnb_config_call(group.qc[1])
            if config is None:
                raise _Todo(
                    "load_in_4bit=/load_in_8bit= is passed beside a quantization_config; put the flag in "
                    "that config and drop it here (transformers >= 5 rejects it)"
                )
            for _, key, value in group.flags:
                truth = _truth(value)
                said = keyword_arg(config, key)
                said_truth = _truth(said.value) if said is not None else False
                if truth is None or truth != said_truth:
                    raise _Todo(
                        f"{key}= does not match the quantization_config passed beside it; keep one of them "
                        "(transformers >= 5 rejects the flag)"
                    )
            for _, key, value in group.bnbs:
                said = keyword_arg(config, key)
                if said is None or not _same(said.value, value):
                    raise _Todo(f"{key}= is passed beside a quantization_config; move it into that config")
            drop |= {i for i, _, _ in group.flags}
            return (lambda updated: _rebuild(updated, drop, None, None)), "redundant load_in_kbit flag dropped"
        truths = [(i, key, value, _truth(value)) for i, key, value in group.flags]
        kept = [(i, key, value, t) for i, key, value, t in truths if t is not False]
        if not kept:
            if group.bnbs:
                raise _Todo("bnb_4bit_*/llm_int8_* keywords with load_in_kbit=False; drop them or quantize")
            drop |= {i for i, _, _, _ in truths}
            return (lambda updated: _rebuild(updated, drop, None, None)), "load_in_kbit=False dropped"
        dynamic = [value for _, _, value, t in kept if t is None]
        if any(not _simple(v) for v in dynamic):
            raise _Todo(
                "load_in_4bit=/load_in_8bit= with a computed value; pass quantization_config="
                "BitsAndBytesConfig(...) if <value> else None"
            )
        name = self._bnb_func(container)
        if name is None:
            raise _Todo(
                "the name BitsAndBytesConfig is bound to something else here; pass quantization_config="
                "transformers.BitsAndBytesConfig(...)"
            )
        first = min(i for i, _, _, _ in truths)
        drop |= {i for i, _, _, _ in truths if i != first}
        kept_keys = [(i, key) for i, key, _, _ in kept]
        bnb_keys = [(i, key) for i, key, _ in group.bnbs]
        conditional = all(t is None for _, _, _, t in kept)
        dyn_indices = [i for i, _, _, t in kept if t is None] if conditional else []

        layout = _layout(container, first) if len(kept_keys) + len(bnb_keys) > 1 else None

        def build(items: list[cst.BaseExpression | None]) -> cst.BaseExpression:
            args = [cst.Arg(keyword=cst.Name(key), value=items[i], equal=_NO_SPACE) for i, key in kept_keys + bnb_keys]
            call = cst.Call(func=cst.parse_expression(name), args=args)
            if layout is not None:
                inner, outer = layout
                args = [a.with_changes(comma=cst.Comma(whitespace_after=inner)) for a in args[:-1]]
                args.append(call.args[-1].with_changes(comma=cst.Comma(whitespace_after=outer)))
                call = call.with_changes(args=args, whitespace_before_args=inner)
            if not dyn_indices:
                return call
            tests = [items[i].deep_clone() for i in dyn_indices]
            test = tests[0]
            for other in tests[1:]:
                test = cst.BooleanOperation(left=test, operator=cst.Or(), right=other)
            return cst.IfExp(test=test, body=call, orelse=cst.Name("None"))

        if name == BNB and not self._bnb_bound(container):
            self._import_bnb(container)
        message = "load_in_kbit -> quantization_config=BitsAndBytesConfig(...)"
        return (lambda updated: _rebuild(updated, drop, first, build)), message

    # ------------------------------------------------------------------ BitsAndBytesConfig
    def _bnb_config_call(self, value: cst.BaseExpression) -> cst.Call | None:
        """The literal BitsAndBytesConfig(...) call behind a quantization_config value (inline or a same-scope
        variable assigned once), or None."""
        if isinstance(value, cst.Name):
            scope = self.scope_of(value)
            if scope is None or value.value not in scope.assignments:
                return None
            assignments = list(scope.assignments[value.value])
            if len(assignments) != 1:
                return None
            target = getattr(assignments[0], "node", None)
            parent = self.parent(target) if target is not None else None
            assign = self.parent(parent) if isinstance(parent, cst.AssignTarget) else None
            if not isinstance(assign, cst.Assign):
                return None
            value = assign.value
        if isinstance(value, cst.Call):
            qname = self.ref_qname(value.func)
            if qname is not None and root(qname) == "transformers" and last(qname) == BNB:
                if not any(a.star for a in value.args):
                    return value
        return None

    def _import_bnb(self, node: cst.CSTNode) -> None:
        """`from transformers import BitsAndBytesConfig`: at the top of the module when the module imports
        transformers/trl/peft there; otherwise (function-local or guarded imports: transformers may be an optional
        dependency of this module) right above the statement that needs it."""
        if self._top_level_hf_import():
            self.add_needed_import("transformers", BNB)
            return
        stmt = self.enclosing_statement(node)
        if stmt is None or id(stmt) in self._local_imports:
            return
        self._local_imports.add(id(stmt))

        def prepend(updated):
            lines = list(updated.leading_lines)
            blank = 0
            while blank < len(lines) and lines[blank].comment is None:
                blank += 1  # blank lines go above the import, comments stay with their statement
            line = cst.parse_statement(f"from transformers import {BNB}\n").with_changes(leading_lines=lines[:blank])
            return cst.FlattenSentinel([line, updated.with_changes(leading_lines=lines[blank:])])

        self.after(stmt, prepend)

    def _top_level_hf_import(self) -> bool:
        if self._top_import is None:
            self._top_import = False
            for stmt in self._module.body:
                if isinstance(stmt, cst.SimpleStatementLine):
                    for small in stmt.body:
                        if isinstance(small, cst.Import):
                            names = [cst.helpers.get_full_name_for_node(a.name) or "" for a in small.names]
                        elif isinstance(small, cst.ImportFrom) and not small.relative and small.module is not None:
                            names = [cst.helpers.get_full_name_for_node(small.module) or ""]
                        else:
                            continue
                        if any(root(n) in HF_ROOTS for n in names):
                            self._top_import = True
        return self._top_import

    def _bnb_bound(self, node: cst.CSTNode) -> bool:
        scope = self.scope_of(node)
        return scope is not None and BNB in scope

    def _bnb_func(self, node: cst.CSTNode) -> str | None:
        """How to spell transformers.BitsAndBytesConfig at `node`: the imported name or alias, or
        "BitsAndBytesConfig" (the import is added); None when that name is bound to something else."""
        scope = self.scope_of(node)
        if scope is not None and BNB in scope:
            for asg in scope[BNB]:
                if not (isinstance(asg, ImportAssignment) and _imports_bnb(asg.node, BNB)):
                    return None
            return BNB
        if scope is not None:
            for asg_scope in (scope, scope.globals):
                for asg in asg_scope.assignments:
                    if isinstance(asg, ImportAssignment) and isinstance(asg.node, cst.ImportFrom):
                        alias = _bnb_alias(asg.node)
                        if alias is not None and asg.name == alias:
                            return alias
        return BNB

    # ------------------------------------------------------------------ dicts
    def _plan_flow(self, name: cst.Name) -> None:
        key = (id(self.scope_of(name)), name.value)
        if key in self._flows_done:
            return
        self._flows_done.add(key)
        flow = self.dict_flow(name, KEYS, self._is_sink)
        if flow is None or not flow.sinks:
            return
        flag_uses = [(k, n) for k, n in flow.key_nodes if k in FLAGS]
        if not flag_uses:
            return
        first = self.first_use(flow, FLAGS)
        if flow.escapes:
            self.add_todo(
                first,
                f"the dict {flow.name} with load_in_kbit keys also goes to "
                f"{flow.describe(flow.escapes[0])}; replace them by "
                "a quantization_config=BitsAndBytesConfig(...) key by hand",
            )
            return
        if flow.reads:
            self.add_todo(
                first,
                f"the load_in_kbit keys of the dict {flow.name} are read here; replace them by a "
                "quantization_config=BitsAndBytesConfig(...) key by hand",
            )
            return
        containers = {id(c): c for _, _, c in flow.key_defs}
        with_flags = {id(c) for k, _, c in flow.key_defs if k in FLAGS}
        stray = [c for cid, c in containers.items() if cid not in with_flags]
        if stray or (flow.stores and (flow.key_defs or QC in flow.all_keys)):
            self.add_todo(
                first,
                f"the dict {flow.name} gets its load_in_kbit/bnb keys in several places; build one "
                "quantization_config=BitsAndBytesConfig(...) key by hand",
            )
            return
        if any(k not in FLAGS for k, _ in flow.stores):
            self.add_todo(
                first,
                f"the dict {flow.name} gets bnb_*/llm_int8_* keys; build one "
                "quantization_config=BitsAndBytesConfig(...) key by hand",
            )
            return
        if len(flow.stores) > 1:
            self.add_todo(
                first,
                f"the dict {flow.name} gets several load_in_kbit keys; build one "
                "quantization_config=BitsAndBytesConfig(...) key by hand",
            )
            return
        for container in containers.values():
            if isinstance(container, cst.Call) and not _is_dict_call(container):
                self.add_todo(
                    first,
                    f"the load_in_kbit keys of {flow.name} come from .update(); build one "
                    "quantization_config=BitsAndBytesConfig(...) key by hand",
                )
                return
            if QC in flow.all_keys and keyword_or_key(container, QC) is None:
                self.add_todo(
                    first,
                    f"the dict {flow.name} also gets a quantization_config elsewhere; drop the "
                    "load_in_kbit keys if it says the same",
                )
                return
        for container in containers.values():
            self._plan_group(container, container)
        for key, sub in flow.stores:
            self._plan_store(key, sub)

    def _plan_store(self, key: str, sub: cst.Subscript) -> None:
        target = self.parent(sub)
        assign = self.parent(target)
        if not isinstance(assign, cst.Assign) or len(assign.targets) != 1:
            self.add_todo(sub, f"{key} set in a chained assignment; use a quantization_config key")
            return
        value = assign.value
        truth = _truth(value)
        if truth is None and not _simple(value):
            self.add_todo(
                sub,
                f"{key} with a computed value; set the quantization_config key to "
                "BitsAndBytesConfig(...) if <value> else None",
            )
            return
        name = self._bnb_func(assign)
        if name is None:
            self.add_todo(sub, "the name BitsAndBytesConfig is bound to something else here")
            return
        if truth is not False and name == BNB and not self._bnb_bound(assign):
            self._import_bnb(assign)

        def fn(updated: cst.Assign) -> cst.Assign:
            tgt = updated.targets[0]
            s = tgt.target
            string = s.slice[0].slice.value
            new_sub = s.with_changes(
                slice=[
                    s.slice[0].with_changes(
                        slice=cst.Index(string.with_changes(value=string.value.replace(key, QC, 1)))
                    )
                ]
            )
            if truth is False:
                new_value: cst.BaseExpression = cst.Name("None")
            else:
                call = cst.Call(
                    func=cst.parse_expression(name),
                    args=[cst.Arg(keyword=cst.Name(key), value=updated.value, equal=_NO_SPACE)],
                )
                new_value = (
                    call if truth else cst.IfExp(test=updated.value.deep_clone(), body=call, orelse=cst.Name("None"))
                )
            return updated.with_changes(targets=[tgt.with_changes(target=new_sub)], value=new_value)

        self.edit(assign, fn, f'd["{key}"] -> d["{QC}"] = BitsAndBytesConfig(...)')


def keyword_or_key(container: cst.CSTNode, key: str):
    if isinstance(container, cst.Call):
        return keyword_arg(container, key)
    if isinstance(container, cst.Dict):
        for el in container.elements:
            if isinstance(el, cst.DictElement) and literal_string(el.key) == key:
                return el
    return None


def _is_dict_call(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "dict"


def _imports_bnb(node: cst.CSTNode, local: str) -> bool:
    if not isinstance(node, cst.ImportFrom) or node.relative or node.module is None:
        return False
    module = cst.helpers.get_full_name_for_node(node.module) or ""
    if root(module) != "transformers" or isinstance(node.names, cst.ImportStar):
        return False
    for alias in node.names:
        if alias.name.value == BNB and (alias.asname is None or alias.asname.name.value == local):
            return True
    return False


def _bnb_alias(node: cst.ImportFrom) -> str | None:
    if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
        return None
    if root(cst.helpers.get_full_name_for_node(node.module) or "") != "transformers":
        return None
    for alias in node.names:
        if isinstance(alias.name, cst.Name) and alias.name.value == BNB:
            return alias.asname.name.value if alias.asname is not None else BNB
    return None


def _layout(container: cst.CSTNode, first: int):
    """For a call/dict written one item per line: the whitespace that puts BitsAndBytesConfig's own arguments one
    per line, one level deeper (inner), and its closing parenthesis back at the item's indentation (outer)."""
    if isinstance(container, cst.Call):
        items = list(container.args)
        before = container.whitespace_before_args if first == 0 else items[first - 1].comma
    elif isinstance(container, cst.Dict):
        items = list(container.elements)
        before = container.lbrace.whitespace_after if first == 0 else items[first - 1].comma
    else:
        return None
    ws = before.whitespace_after if isinstance(before, cst.Comma) else before
    if not isinstance(ws, cst.ParenthesizedWhitespace):
        return None
    newline = cst.TrailingWhitespace()
    inner = cst.ParenthesizedWhitespace(
        first_line=newline, indent=ws.indent, last_line=cst.SimpleWhitespace(ws.last_line.value + "    ")
    )
    outer = cst.ParenthesizedWhitespace(first_line=newline, indent=ws.indent, last_line=ws.last_line)
    return inner, outer


def _rebuild(updated: cst.CSTNode, drop: set[int], first: int | None, build) -> cst.CSTNode:
    """Drop the items at `drop`; replace the item at `first` by `quantization_config=<build(values)>`."""
    if isinstance(updated, cst.Call):
        items = list(updated.args)
        values = [a.value for a in items]
    else:
        items = list(updated.elements)
        values = [getattr(el, "value", None) for el in items]
    out = []
    for i, item in enumerate(items):
        if i in drop:
            continue
        if i == first:
            value = build(values)
            if isinstance(item, cst.Arg):
                item = item.with_changes(keyword=cst.Name(QC), value=value)
            else:
                item = item.with_changes(key=item.key.with_changes(value=_requote(item.key, QC)), value=value)
        out.append(item)
    if items and (len(items) - 1) in drop and out:
        out[-1] = out[-1].with_changes(comma=items[-1].comma)
    if isinstance(updated, cst.Call):
        return updated.with_changes(args=out)
    return updated.with_changes(elements=out)


def _requote(key: cst.BaseExpression, new: str) -> str:
    old = literal_string(key) or ""
    return key.value.replace(old, new, 1)  # type: ignore[union-attr]
