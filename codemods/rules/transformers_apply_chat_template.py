"""transformers-apply-chat-template: `return_dict=False` where the ids of `apply_chat_template` are used as ids.

transformers 5.0 made `return_dict=True` the default of a tokenizer's `apply_chat_template`: it returns a
`BatchEncoding` instead of the ids (a tensor with `return_tensors="pt"`, else a list). `.to(device)` still works,
so the failure comes far away: `model.generate(ids)` raises a bare AttributeError, `ids.shape` fails. The keyword
exists on every supported version with the old default, so adding it keeps the old result everywhere. Processors
kept `return_dict=False` as their default (left alone).

Rewritten: calls on a receiver known to be a tokenizer that tokenize (no `tokenize=False`), pass no `return_dict=`
and whose result is not used as a mapping in the same scope (`**r`, `r["input_ids"]`, `r.input_ids`, `r.keys()`:
code written for 5.x). Reported: the same calls on a receiver of unknown type.
"""

from __future__ import annotations

import ast

import libcst as cst

from codemods import cstutil
from codemods.analysis import string_value
from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule
from codemods.rules._keywords import keyword

METHOD = "apply_chat_template"
MAPPING_ATTRS = frozenset({"input_ids", "attention_mask", "keys", "items", "values", "data", "get", "pixel_values"})


class TransformersApplyChatTemplate(Rule):
    id = "transformers-apply-chat-template"
    summary = "tokenizer.apply_chat_template(...) -> return_dict=False where the ids are used (5.0 returns a dict)"
    triggers = (METHOD,)
    gates = (COMPAT_FLOOR_GATE,)

    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        for call in a.calls_by_attr.get(METHOD, ()):
            if a.in_fstring(call) or keyword(call, "return_dict") is not None:
                continue
            tokenize = keyword(call, "tokenize")
            if tokenize is not None and isinstance(tokenize.value, ast.Constant) and tokenize.value.value is False:
                continue
            assert isinstance(call.func, ast.Attribute)
            kind = ctx.kinds.kind_of(call.func.value)
            if kind is not None and kind.what != "tokenizer":
                continue  # a processor (its default did not change), another library's object, the user's class
            if _used_as_mapping(ctx, call):
                continue
            if kind is None or any(k.arg is None for k in call.keywords):
                ctx.diagnose(
                    call,
                    "if this is a tokenizer, pass return_dict=False (5.0 returns a BatchEncoding, not the ids)",
                    "if a tokenizer, pass return_dict=False (5.0 returns a dict)",
                    "if a tokenizer, pass return_dict=False",
                )
                continue
            ctx.edit(call, _fitted(ctx, call), "apply_chat_template(..., return_dict=False)")


def _fitted(ctx: FileContext, call: ast.Call):
    line = ctx.text.line(call.lineno)
    old_code = ctx.analysis.segment(call)
    indent = ctx.text.indent_unit

    def fn(node: cst.Call) -> cst.Call:
        args = [*node.args, cstutil.kwarg("return_dict", cst.Name("False"))]
        new = node.with_changes(args=cstutil.with_commas(args, node.args, frozenset({len(args) - 1})))
        return cstutil.fit(line, old_code, new, indent)

    return fn


def _used_as_mapping(ctx: FileContext, call: ast.Call) -> bool:
    """The result is read as a mapping: directly, or through the name it is assigned to (same scope)."""
    a = ctx.analysis
    node: ast.AST = call
    parent = a.parent(node)
    # `.to(device)` keeps a BatchEncoding a BatchEncoding: look past it
    while isinstance(parent, ast.Attribute) and parent.attr == "to" and isinstance(a.parent(parent), ast.Call):
        node = a.parent(parent)  # type: ignore[assignment]
        parent = a.parent(node)
    if _mapping_use(a, node):
        return True
    if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            binding = a.binding_for(target)
            if binding is not None and any(_mapping_use(a, load) for load in a.loads(binding)):
                return True
    return False


def _mapping_use(a, node: ast.AST) -> bool:
    parent = a.parent(node)
    if isinstance(parent, ast.keyword) and parent.arg is None:
        return True  # f(**r)
    if isinstance(parent, ast.Dict) and node in parent.values and parent.keys[parent.values.index(node)] is None:
        return True  # {**r}
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return string_value(parent.slice) is not None
    if isinstance(parent, ast.Attribute) and parent.value is node:
        if parent.attr == "to" and isinstance(a.parent(parent), ast.Call):
            return _mapping_use(a, a.parent(parent))
        return parent.attr in MAPPING_ATTRS
    return False
