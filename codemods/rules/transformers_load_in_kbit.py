"""transformers-load-in-kbit: `from_pretrained(load_in_4bit=...)` -> `quantization_config=BitsAndBytesConfig(...)`.

transformers 5.0 removed the `load_in_4bit=`/`load_in_8bit=` keywords of `from_pretrained` (TypeError: unexpected
keyword argument); `quantization_config=BitsAndBytesConfig(load_in_4bit=True, ...)` works from 4.30 on (gate
`bnb_quantization_config`).

- `load_in_4bit=True` (or `load_in_8bit=True`) and the `bnb_4bit_*`/`llm_int8_*` keywords beside it (4.x folded
  those into the config) -> one `quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_...)`; the import
  `from transformers import BitsAndBytesConfig` is added unless the name (or an alias of it) is already imported.
- a flag whose value is not a literal (`load_in_8bit=args.load_in_8bit`) ->
  `quantization_config=BitsAndBytesConfig(load_in_8bit=args.load_in_8bit) if args.load_in_8bit else None`
  (a BitsAndBytesConfig with both flags False would still quantize, to 4-bit).
- `load_in_4bit=False` alone is dropped (it is the default, and transformers 5 rejects the keyword).
- a `quantization_config=` already passed: the redundant flags are dropped when it is a `BitsAndBytesConfig(...)`
  call (inline, or a same-scope variable) that says the same (the same literal, or the textually same expression);
  otherwise a TODO.
- the same for the keys of a same-scope dict that reaches `from_pretrained` through `**`, TRL's
  `*model_init_kwargs` and pipeline's `model_kwargs` (dict literal, `dict(...)`, `d["load_in_8bit"] = x`).
Left alone: other libraries that still take the keywords (unsloth's `FastLanguageModel`, auto-gptq, ...),
`BitsAndBytesConfig(load_in_4bit=...)` itself, config objects and dataclass fields, CLI flags; reported: unknown
receivers.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import libcst as cst

from codemods import hf
from codemods.analysis import string_value
from codemods.cstutil import NO_SPACE
from codemods.flows import describe, dict_flow, is_dict_call
from codemods.rule import FileContext, Rule
from codemods.rules._keywords import (
    INIT_KWARGS,
    init_kwargs_assignments,
    keyword,
    loading_call,
    loading_calls,
    loading_sink,
)

FLAGS = ("load_in_4bit", "load_in_8bit")
BNB_KWARGS = (
    "llm_int8_threshold", "llm_int8_skip_modules", "llm_int8_enable_fp32_cpu_offload", "llm_int8_has_fp16_weight",
    "bnb_4bit_compute_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_quant_storage",
)  # fmt: skip
KEYS = frozenset(FLAGS + BNB_KWARGS)
QC = "quantization_config"
BNB = "BitsAndBytesConfig"
KEYWORDS = frozenset(FLAGS + ("model_kwargs",))


class _Todo(Exception):
    pass


@dataclass
class _Group:
    """The kbit items of one argument list / dict display: indices into its items (libcst order)."""

    flags: list[tuple[int, str, ast.AST]]
    bnbs: list[tuple[int, str, ast.AST]]
    qc: tuple[int, ast.AST] | None


def _truth(node: ast.AST) -> bool | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    return None


def _simple(node: ast.AST) -> bool:
    """Side-effect free enough to be evaluated twice (`X` in `BitsAndBytesConfig(load_in_4bit=X) if X else None`)."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return _simple(node.value)
    if isinstance(node, ast.Subscript):
        return _simple(node.value) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, (str, int))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _simple(node.operand)
    if isinstance(node, ast.Compare):
        return _simple(node.left) and all(
            _simple(c) or (isinstance(c, ast.Constant) and isinstance(c.value, (str, int))) for c in node.comparators
        )
    return False


def items(container: ast.AST) -> list[tuple[str | None, ast.AST | None]]:
    """(key, value) of a call's arguments (source order, as libcst has them) or a dict display's elements."""
    out: list[tuple[str | None, ast.AST | None]] = []
    if isinstance(container, ast.Call):
        args = sorted(
            [*container.args, *container.keywords],
            key=lambda n: (n.lineno, n.col_offset),
        )
        for a in args:
            out.append((a.arg, a.value) if isinstance(a, ast.keyword) else (None, a))
    elif isinstance(container, ast.Dict):
        for k, v in zip(container.keys, container.values):
            out.append((string_value(k) if k is not None else None, v))
    return out


class TransformersLoadInKbit(Rule):
    id = "transformers-load-in-kbit"
    summary = "from_pretrained(load_in_4bit=/load_in_8bit=) -> quantization_config=BitsAndBytesConfig(...)"
    triggers = ("load_in_",)
    trigger_regex = re.compile(r"\bload_in_[48]bit[ \t]*=(?!=)|[\"']load_in_[48]bit[\"']")
    gates = ("bnb_quantization_config",)

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self._flows_done: set[tuple[int, str]] = set()
        self._local_imports: set[int] = set()
        self.is_sink = loading_sink(self.sink, frozenset({"load"}))
        for call in loading_calls(ctx, FLAGS):
            self.plan_call(call)
        for assign in init_kwargs_assignments(ctx):
            self.plan_dict_value(assign.value, assign)

    def sink(self, call: ast.Call) -> str | None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in hf.LOAD_METHODS and func.attr != "from_pretrained":
            return None
        return loading_call(self.ctx, call, KEYWORDS)

    # ------------------------------------------------------------------ plan
    def plan_call(self, call: ast.Call) -> None:
        ctx = self.ctx
        kind = self.sink(call)
        if kind is None or ctx.analysis.in_fstring(call):
            return
        if kind == "load":
            self.plan_group(call, call)
            for kw in call.keywords:
                if kw.arg is None and isinstance(kw.value, ast.Name):
                    self.plan_flow(kw.value)
        elif kind == "pipeline":
            mk = keyword(call, "model_kwargs")
            if mk is not None:
                self.plan_dict_value(mk.value, call)
        elif kind == "trl_config":
            for kw in call.keywords:
                if kw.arg is not None and INIT_KWARGS.match(kw.arg):
                    self.plan_dict_value(kw.value, call)
        elif kind == "unknown" and any(keyword(call, f) is not None for f in FLAGS):
            ctx.diagnose(
                call,
                "unknown receiver: if a transformers class, pass quantization_config=",
                "if a transformers class, pass quantization_config=",
            )

    def plan_dict_value(self, value: ast.AST, anchor: ast.AST) -> None:
        if isinstance(value, ast.Name):
            self.plan_flow(value)
        elif isinstance(value, ast.Dict) or is_dict_call(value, self.ctx.analysis):
            self.plan_group(value, anchor)

    # ------------------------------------------------------------------ one argument list / dict display
    def group(self, container: ast.AST) -> _Group | None:
        flags, bnbs, qc = [], [], None
        for i, (key, value) in enumerate(items(container)):
            if key in FLAGS:
                flags.append((i, key, value))
            elif key in BNB_KWARGS:
                bnbs.append((i, key, value))
            elif key == QC:
                qc = (i, value)
        return _Group(flags, bnbs, qc) if flags else None

    def plan_group(self, container: ast.AST, anchor: ast.AST) -> None:
        group = self.group(container)
        if group is None:
            return
        try:
            fn, message, bnb = self.group_edit(container, group)
        except _Todo as todo:
            self.ctx.todo(anchor, str(todo))
            return
        if self.ctx.edit(container, fn, message) and bnb:
            self.import_bnb(container)

    def group_edit(self, container: ast.AST, group: _Group):
        a = self.ctx.analysis
        drop = {i for i, _, _ in group.bnbs}
        if group.qc is not None:
            config = self.bnb_config_call(group.qc[1])
            if config is None:
                raise _Todo("flag beside quantization_config: move it into that config")
            for _, key, value in group.flags:
                said = keyword(config, key)
                truth = _truth(value)
                if truth is not None:
                    said_truth = _truth(said.value) if said is not None else False
                    if truth != said_truth:
                        raise _Todo(f"{key}= differs from the quantization_config; keep one")
                elif said is None or a.text(said.value) != a.text(value):
                    raise _Todo(f"{key}= differs from the quantization_config; keep one")
            for _, key, value in group.bnbs:
                said = keyword(config, key)
                if said is None or a.text(said.value) != a.text(value):
                    raise _Todo("bnb options beside quantization_config: move them there")
            drop |= {i for i, _, _ in group.flags}
            return (
                lambda updated: _rebuild(updated, drop, None, None),
                "redundant load_in_kbit flag dropped",
                False,
            )
        truths = [(i, key, value, _truth(value)) for i, key, value in group.flags]
        kept = [(i, key, value, t) for i, key, value, t in truths if t is not False]
        if not kept:
            if group.bnbs:
                raise _Todo("bnb options with load_in_kbit=False: drop them or quantize")
            drop |= {i for i, _, _, _ in truths}
            return (
                lambda updated: _rebuild(updated, drop, None, None),
                "load_in_kbit=False dropped",
                False,
            )
        dynamic = [value for _, _, value, t in kept if t is None]
        if any(not _simple(v) for v in dynamic):
            raise _Todo("computed flag: use quantization_config=... if flag else None")
        name = self.bnb_name(container)
        if name is None:
            raise _Todo("BitsAndBytesConfig is taken here; build the config by hand")
        first = min(i for i, _, _, _ in truths)
        drop |= {i for i, _, _, _ in truths if i != first}
        kept_keys = [(i, key) for i, key, _, _ in kept]
        bnb_keys = [(i, key) for i, key, _ in group.bnbs]
        conditional = all(t is None for _, _, _, t in kept)
        dyn_indices = [i for i, _, _, t in kept if t is None] if conditional else []
        multiline = len(kept_keys) + len(bnb_keys) > 1

        def build(values: list[cst.BaseExpression | None], layout) -> cst.BaseExpression:
            args = [cst.Arg(keyword=cst.Name(key), value=values[i], equal=NO_SPACE) for i, key in kept_keys + bnb_keys]
            call = cst.Call(func=cst.parse_expression(name), args=args)
            if layout is not None:
                inner, outer = layout
                args = [x.with_changes(comma=cst.Comma(whitespace_after=inner)) for x in args[:-1]]
                args.append(call.args[-1].with_changes(comma=cst.Comma(whitespace_after=outer)))
                call = call.with_changes(args=args, whitespace_before_args=inner)
            if not dyn_indices:
                return call
            tests = [values[i].deep_clone() for i in dyn_indices]
            test = tests[0]
            for other in tests[1:]:
                test = cst.BooleanOperation(left=test, operator=cst.Or(), right=other)
            return cst.IfExp(test=test, body=call, orelse=cst.Name("None"))

        message = "load_in_kbit -> quantization_config=BitsAndBytesConfig(...)"

        def fn(updated):
            layout = _layout(updated, first) if multiline else None
            return _rebuild(updated, drop, first, lambda values: build(values, layout))

        return fn, message, name == BNB and not self.bnb_bound(container)

    # ------------------------------------------------------------------ BitsAndBytesConfig
    def bnb_config_call(self, value: ast.AST) -> ast.Call | None:
        """The literal BitsAndBytesConfig(...) call behind a quantization_config value (inline or a same-scope
        variable assigned once), or None."""
        a = self.ctx.analysis
        if isinstance(value, ast.Name):
            found = a.reaching(value)
            if len(found) != 1 or found[0].kind != "assign" or found[0].path:
                return None
            if len(found[0].scope.bindings.get(value.id, ())) != 1:
                return None
            value = found[0].value
        if isinstance(value, ast.Call):
            qname = self.ctx.kinds.ref_qname(value.func)
            if qname is not None and hf.root(qname) == "transformers" and hf.last(qname) == BNB:
                if not value.args and all(k.arg is not None for k in value.keywords):
                    return value
        return None

    def import_bnb(self, node: ast.AST) -> None:
        """`from transformers import BitsAndBytesConfig`: at the top of the module when the module imports
        transformers/trl/peft there, or nowhere (the class comes from another module of the project); when it
        imports them only in functions or behind a guard (transformers may be an optional dependency of this
        module), right above the statement that needs it."""
        ctx = self.ctx
        if self.top_level_hf_import() or not self.any_hf_import():
            ctx.add_import("transformers", BNB)
            return
        stmt = ctx.analysis.statement_of(node)
        scope = ctx.analysis.scope_of(node)
        if stmt is None or id(scope) in self._local_imports:
            return
        self._local_imports.add(id(scope))  # one local import per function, above its first use
        ctx.add_import("transformers", BNB, at=stmt)

    def top_level_hf_import(self) -> bool:
        for stmt in self.ctx.analysis.tree.body:
            if isinstance(stmt, ast.Import) and any(hf.is_hf(al.name) for al in stmt.names):
                return True
            if isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module and hf.is_hf(stmt.module):
                return True
        return False

    def any_hf_import(self) -> bool:
        for stmt in self.ctx.analysis.imports:
            if isinstance(stmt, ast.Import) and any(hf.is_hf(al.name) for al in stmt.names):
                return True
            if isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module and hf.is_hf(stmt.module):
                return True
        return False

    def bnb_bound(self, node: ast.AST) -> bool:
        a = self.ctx.analysis
        return bool(a.resolve(BNB, a.scope_of(node)))

    def bnb_name(self, node: ast.AST) -> str | None:
        """How to spell transformers.BitsAndBytesConfig at `node`: the imported name or alias, or
        "BitsAndBytesConfig" (the import is added); None when that name is bound to something else."""
        a = self.ctx.analysis
        scope = a.scope_of(node)
        found = a.resolve(BNB, scope)
        if found:
            if all(b.kind == "import" and b.qname is not None and hf.root(b.qname) == "transformers"
                   and hf.last(b.qname) == BNB for b in found):  # fmt: skip
                return BNB
            return None
        current = scope
        while current is not None:
            for bindings in current.bindings.values():
                for b in bindings:
                    if b.kind == "import" and b.qname == f"transformers.{BNB}":
                        return b.name
            current = current.parent
        return BNB

    # ------------------------------------------------------------------ dicts
    def plan_flow(self, name: ast.Name) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        found = a.reaching(name)
        if not found:
            return
        key = (id(found[0].scope), name.id)
        if key in self._flows_done:
            return
        self._flows_done.add(key)
        flow = dict_flow(a, name, KEYS, self.is_sink)
        if flow is None or not flow.sinks:
            return
        flag_uses = [(k, n) for k, n in flow.key_nodes if k in FLAGS]
        if not flag_uses:
            return
        first = flow.first_use(FLAGS)
        who = flow.name if len(flow.name) <= 20 else flow.name[:17] + "..."
        if flow.escapes:
            where = describe(a, flow.escapes[0])
            ctx.todo(
                first,
                f"{who} also goes to {where}; set quantization_config by hand",
                f"{who} also goes elsewhere; set quantization_config by hand",
                f"{who} also goes elsewhere; rewrite by hand",
            )
            return
        if flow.reads:
            ctx.todo(first, f"kbit keys of {who} are read here; rewrite by hand")
            return
        containers = {id(c): c for _, _, c in flow.key_defs}
        with_flags = {id(c) for k, _, c in flow.key_defs if k in FLAGS}
        stray = [c for cid, c in containers.items() if cid not in with_flags]
        several = "sets kbit keys in several places; rewrite by hand"
        if stray or (flow.stores and (flow.key_defs or QC in flow.all_keys)):
            ctx.todo(first, f"{who} {several}")
            return
        if any(k not in FLAGS for k, _ in flow.stores) or len(flow.stores) > 1:
            ctx.todo(first, f"{who} {several}")
            return
        for container in containers.values():
            if isinstance(container, ast.Call) and not is_dict_call(container, a):
                ctx.todo(first, f"{who} gets kbit keys from .update(); rewrite by hand")
                return
            if QC in flow.all_keys and _key_item(container, QC) is None:
                ctx.todo(
                    first,
                    f"{who} also has quantization_config; drop kbit keys if the same",
                )
                return
        for container in containers.values():
            self.plan_group(container, container)
        for key_name, sub in flow.stores:
            self.plan_store(key_name, sub)

    def plan_store(self, key: str, sub: ast.Subscript) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        assign = a.parent(sub)
        if not isinstance(assign, ast.Assign) or len(assign.targets) != 1:
            ctx.todo(sub, "chained assignment of a kbit key: rewrite by hand")
            return
        value = assign.value
        truth = _truth(value)
        if truth is None and not _simple(value):
            ctx.todo(sub, "computed kbit key: set quantization_config by hand")
            return
        name = self.bnb_name(assign)
        if name is None:
            ctx.todo(sub, "BitsAndBytesConfig is taken here; build the config by hand")
            return

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
                    args=[cst.Arg(keyword=cst.Name(key), value=updated.value, equal=NO_SPACE)],
                )
                new_value = (
                    call
                    if truth
                    else cst.IfExp(
                        test=updated.value.deep_clone(),
                        body=call,
                        orelse=cst.Name("None"),
                    )
                )
            return updated.with_changes(targets=[tgt.with_changes(target=new_sub)], value=new_value)

        if ctx.edit(assign, fn, f'd["{key}"] -> d["{QC}"] = BitsAndBytesConfig(...)'):
            if truth is not False and name == BNB and not self.bnb_bound(assign):
                self.import_bnb(assign)


def _key_item(container: ast.AST, key: str):
    for k, v in items(container):
        if k == key:
            return v
    return None


def _layout(container: cst.CSTNode, first: int):
    """For a call/dict written one item per line: the whitespace that puts BitsAndBytesConfig's own arguments one
    per line, one level deeper (inner), and its closing parenthesis back at the item's indentation (outer)."""
    if isinstance(container, cst.Call):
        elems = list(container.args)
        before = container.whitespace_before_args if first == 0 else elems[first - 1].comma
    elif isinstance(container, cst.Dict):
        elems = list(container.elements)
        before = container.lbrace.whitespace_after if first == 0 else elems[first - 1].comma
    else:
        return None
    ws = before.whitespace_after if isinstance(before, cst.Comma) else before
    if not isinstance(ws, cst.ParenthesizedWhitespace):
        return None
    newline = cst.TrailingWhitespace()
    inner = cst.ParenthesizedWhitespace(
        first_line=newline,
        indent=ws.indent,
        last_line=cst.SimpleWhitespace(ws.last_line.value + "    "),
    )
    outer = cst.ParenthesizedWhitespace(first_line=newline, indent=ws.indent, last_line=ws.last_line)
    return inner, outer


def _rebuild(updated: cst.CSTNode, drop: set[int], first: int | None, build) -> cst.CSTNode:
    """Drop the items at `drop`; replace the item at `first` by `quantization_config=<build(values)>`."""
    if isinstance(updated, cst.Call):
        elems = list(updated.args)
        values = [x.value for x in elems]
    else:
        elems = list(updated.elements)  # type: ignore[attr-defined]
        values = [getattr(el, "value", None) for el in elems]
    out = []
    for i, item in enumerate(elems):
        if i in drop:
            continue
        if i == first:
            value = build(values)
            if isinstance(item, cst.Arg):
                item = item.with_changes(keyword=cst.Name(QC), value=value)
            else:
                item = item.with_changes(key=item.key.with_changes(value=_requote(item.key, QC)), value=value)
        out.append(item)
    if elems and (len(elems) - 1) in drop and out:
        out[-1] = out[-1].with_changes(comma=elems[-1].comma)
        if isinstance(updated, cst.Call):  # and the whitespace before `)` (see cstutil.without_args)
            out[-1] = out[-1].with_changes(whitespace_after_arg=elems[-1].whitespace_after_arg)
    if isinstance(updated, cst.Call):
        return updated.with_changes(args=out)
    return updated.with_changes(elements=out)


def _requote(key: cst.BaseExpression, new: str) -> str:
    value = key.value  # type: ignore[attr-defined]
    for q in ('"', "'"):
        if value.endswith(q):
            inner = value[value.index(q) + 1 : -1]
            return value.replace(inner, new, 1)
    return value
