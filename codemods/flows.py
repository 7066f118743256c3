"""Where a dict variable goes: its definitions, key uses, sinks and escapes in its own scope (ast).

`dict_flow(analysis, name, keys, is_sink)` collects, for the dict bound to `name`, every literal definition
(`{...}`, `dict(...)`, `d |= {...}`), key store (`d["k"] = v`), key read (`d["k"]`, `d.get("k")`, `"k" in d`),
`d.update(...)`, the uses that are sinks (`f(**d)` where `is_sink` says f is one) and the uses that let it escape
(any other call, a return, an attribute...). A rule renames a key in every place at once when every use is
visible, or leaves a TODO saying where the dict also goes. Knows no rule.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

from codemods.analysis import FileAnalysis, string_value

__all__ = [
    "DictFlow",
    "attribute_flow",
    "dict_flow",
    "dict_keys_in_scope",
    "dict_value",
    "literal_keys",
    "describe",
    "self_attribute",
]

# is_sink(use, container): use = the ast.keyword (`f(**d)`, `f(kw=d)`) or ast.Assign (`x.attr = d`); container =
# the ast.Call or the ast.Assign. True: a known sink; False: a known non-sink (an escape); None: not sink-shaped.
SinkTest = Callable[[ast.AST, ast.AST], "bool | None"]

_HARMLESS_CALLEES = frozenset({"print", "len", "str", "repr", "pprint", "pformat", "sorted", "list", "set"})
_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception", "log"})


@dataclass
class DictFlow:
    name: str
    visible: bool = True  # every definition is a dict literal / dict(...) call we can see whole
    definitions: list[ast.AST] = field(default_factory=list)  # the Dict / Call (dict(...)) nodes
    # (key, node, container): node = the key's string Constant in a Dict, or the ast.keyword of dict(k=v)/update(k=v)
    key_defs: list[tuple[str, ast.AST, ast.AST]] = field(default_factory=list)
    stores: list[tuple[str, ast.Subscript]] = field(default_factory=list)  # d["key"] = ...
    reads: list[tuple[str, ast.AST]] = field(default_factory=list)  # the key's string Constant in a read
    sinks: list[ast.AST] = field(default_factory=list)
    escapes: list[ast.AST] = field(default_factory=list)
    all_keys: set[str] = field(default_factory=set)  # every literal key seen in definitions/stores

    @property
    def key_nodes(self) -> list[tuple[str, ast.AST]]:
        out = [(key, node) for key, node, _ in self.key_defs]
        out += [(key, sub) for key, sub in self.stores]
        out += list(self.reads)
        return sorted(out, key=lambda kn: (kn[1].lineno, kn[1].col_offset))

    def first_use(self, keys=None) -> ast.AST:
        """The key use that comes first in the file (where a TODO goes)."""
        return next(node for key, node in self.key_nodes if keys is None or key in keys)


def dict_value(container: ast.AST, key_node: ast.AST) -> ast.AST | None:
    """The value of the key `key_node` in the dict display `container`, else None."""
    if isinstance(container, ast.Dict):
        for k, v in zip(container.keys, container.values):
            if k is key_node:
                return v
    return None


def store_key_node(sub: ast.Subscript) -> ast.Constant:
    return sub.slice  # type: ignore[return-value]


def literal_keys(
    flow: DictFlow,
    value: ast.AST,
    keys: frozenset[str],
    analysis: FileAnalysis,
    record: bool = True,
) -> bool:
    """Collect the keys of a dict literal or dict(...) call into `flow`; False when the value is neither."""
    if isinstance(value, ast.Dict):
        if record:
            flow.definitions.append(value)
        for key_node in value.keys:
            if key_node is None:  # {**other}
                flow.visible = False
                continue
            key = string_value(key_node)
            if key is None:
                continue
            flow.all_keys.add(key)
            if key in keys:
                flow.key_defs.append((key, key_node, value))
        return True
    if is_dict_call(value, analysis):
        assert isinstance(value, ast.Call)
        if record:
            flow.definitions.append(value)
        for arg in value.args:
            if isinstance(arg, ast.Dict):
                literal_keys(flow, arg, keys, analysis, record=False)
            else:
                flow.visible = False
        _keyword_keys(flow, value, keys)
        return True
    return False


def _keyword_keys(flow: DictFlow, call: ast.Call, keys: frozenset[str]) -> None:
    """The keys a call gives as keywords (`dict(k=v)`, `d.update(k=v)`); `**x` makes them invisible."""
    for kw in call.keywords:
        if kw.arg is None:
            flow.visible = False
            continue
        flow.all_keys.add(kw.arg)
        if kw.arg in keys:
            flow.key_defs.append((kw.arg, kw, call))


def is_dict_call(node: ast.AST, analysis: FileAnalysis) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not analysis.reaching(node.func)
    )


def dict_flow(analysis: FileAnalysis, name_node: ast.Name, keys: frozenset[str], is_sink: SinkTest) -> DictFlow | None:
    """The flow of the dict variable `name_node` (a load) in the scope that binds it; None when the load is not in
    that scope (a module-level dict read in a function may also be imported by other modules) or nothing binds it."""
    found = analysis.reaching(name_node)
    if not found:
        return None
    scope = found[0].scope
    if scope is not analysis.scope_of(name_node):
        return None
    name = name_node.id
    flow = DictFlow(name)
    bindings = scope.bindings.get(name, [])
    for b in bindings:
        _definition(flow, b, keys, analysis)
    seen: set[int] = set()
    for b in bindings:
        for load in analysis.loads(b):
            if id(load) not in seen:
                seen.add(id(load))
                _access(flow, load, keys, is_sink, analysis)
    return flow


def self_attribute(analysis: FileAnalysis, node: ast.AST) -> ast.ClassDef | None:
    """`self.<attr>` inside a method: the class; else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return analysis.enclosing_class(node)
    return None


def attribute_flow(
    analysis: FileAnalysis,
    cls: ast.ClassDef,
    attr: str,
    keys: frozenset[str],
    is_sink: SinkTest,
) -> DictFlow:
    """The flow of the dict `self.<attr>` across the methods of `cls`: assigned in one method (`self.kw = {}`),
    filled in another (`self.kw["k"] = v`), passed on in a third (`f(**self.kw)`). The same attribute written on
    another object anywhere in the file makes the keys invisible (it may be this object, seen from outside)."""
    flow = DictFlow(f"self.{attr}")
    for node in analysis.attributes.get(attr, ()):
        if self_attribute(analysis, node) is not cls:
            if _written(analysis, node):
                flow.visible = False
            continue
        parent = analysis.parent(node)
        if isinstance(parent, ast.Assign) and node in parent.targets:
            if not literal_keys(flow, parent.value, keys, analysis):
                flow.visible = False
        elif isinstance(parent, ast.AnnAssign) and parent.target is node:
            if parent.value is not None and not literal_keys(flow, parent.value, keys, analysis):
                flow.visible = False
        elif isinstance(parent, ast.AugAssign) and parent.target is node:
            if not (isinstance(parent.op, ast.BitOr) and literal_keys(flow, parent.value, keys, analysis)):
                flow.visible = False
        elif isinstance(parent, ast.Delete):
            flow.escapes.append(parent)
        else:
            _access(flow, node, keys, is_sink, analysis)
    return flow


def _written(analysis: FileAnalysis, node: ast.Attribute) -> bool:
    """`x.attr = ...`, `x.attr[k] = ...`, `del x.attr[k]`, `x.attr.update(...)`-style writes."""
    if not isinstance(node.ctx, ast.Load):
        return True
    parent = analysis.parent(node)
    if isinstance(parent, ast.Subscript) and parent.value is node and not isinstance(parent.ctx, ast.Load):
        return True
    if isinstance(parent, ast.Attribute) and parent.attr in (
        "update",
        "setdefault",
        "pop",
        "clear",
        "popitem",
    ):
        return True
    return False


def dict_keys_in_scope(analysis: FileAnalysis, name_node: ast.Name) -> set[str]:
    """Every literal key the dict bound to `name_node` gets (definitions, stores, update(...)); cheap version of
    dict_flow for 'does this dict carry key K?'."""
    flow = dict_flow(analysis, name_node, frozenset(), lambda use, container: None)
    return flow.all_keys if flow is not None else set()


def _definition(flow: DictFlow, b, keys: frozenset[str], analysis: FileAnalysis) -> None:
    if b.kind in ("assign", "annassign") and not b.path and b.value is not None:
        if literal_keys(flow, b.value, keys, analysis):
            return
    elif b.kind == "augassign" and isinstance(b.statement, ast.AugAssign) and isinstance(b.statement.op, ast.BitOr):
        if literal_keys(flow, b.value, keys, analysis):
            return
    flow.visible = False


def _access(flow: DictFlow, node: ast.Name, keys, is_sink: SinkTest, analysis: FileAnalysis) -> None:
    parent = analysis.parent(node)
    if isinstance(parent, ast.keyword) and parent.value is node:
        call = analysis.parent(parent)
        verdict = is_sink(parent, call) if isinstance(call, ast.Call) else None
        if verdict:
            flow.sinks.append(parent)
        else:
            flow.escapes.append(call if isinstance(call, ast.Call) else parent)
        return
    if isinstance(parent, ast.Call) and node in parent.args:
        if not _harmless_call(parent, analysis):
            flow.escapes.append(parent)
        return
    if isinstance(parent, ast.Starred):
        flow.escapes.append(analysis.parent(parent) or parent)
        return
    if isinstance(parent, ast.Subscript) and parent.value is node:
        key = string_value(parent.slice)
        if key is None:
            if isinstance(parent.ctx, ast.Store):
                flow.visible = False  # `d[name] = value`: any key
            return
        if isinstance(parent.ctx, ast.Store):
            flow.all_keys.add(key)
            if key in keys:
                flow.stores.append((key, parent))
        elif key in keys:
            flow.reads.append((key, parent.slice))
        return
    if isinstance(parent, ast.Attribute) and parent.value is node:
        call = analysis.parent(parent)
        method = parent.attr
        if not (isinstance(call, ast.Call) and call.func is parent):
            flow.escapes.append(parent)
            return
        if method in ("get", "pop", "setdefault"):
            key = string_value(call.args[0]) if call.args else None
            if key is not None and key in keys:
                flow.reads.append((key, call.args[0]))
            if method == "setdefault" and key is not None:
                flow.all_keys.add(key)
            return
        if method == "update":
            _keyword_keys(flow, call, keys)
            for arg in call.args:
                if isinstance(arg, ast.Dict):
                    literal_keys(flow, arg, keys, analysis, record=False)
                else:
                    flow.visible = False
            return
        if method in ("items", "keys", "values", "__len__", "copy"):
            return
        flow.escapes.append(call)
        return
    if isinstance(parent, ast.Compare):
        if node in parent.comparators:
            index = parent.comparators.index(node)
            op = parent.ops[index]
            left = parent.left if index == 0 else parent.comparators[index - 1]
            if isinstance(op, (ast.In, ast.NotIn)):
                key = string_value(left)
                if key is not None and key in keys:
                    flow.reads.append((key, left))
        return
    if isinstance(parent, ast.Assign) and parent.value is node:
        verdict = is_sink(parent, parent)
        (flow.sinks if verdict else flow.escapes).append(parent)
        return
    if isinstance(parent, (ast.FormattedValue, ast.JoinedStr)):
        return
    if isinstance(parent, (ast.If, ast.While, ast.UnaryOp, ast.BoolOp)) and not isinstance(parent, ast.BoolOp):
        return  # `if d:` / `not d`
    flow.escapes.append(parent if parent is not None else node)


def _harmless_call(call: ast.Call, analysis: FileAnalysis) -> bool:
    func = call.func
    if isinstance(func, ast.Name) and func.id in _HARMLESS_CALLEES and not analysis.reaching(func):
        return True
    if isinstance(func, ast.Attribute) and func.attr in _LOG_METHODS:
        head = func.value
        if isinstance(head, ast.Name) and "log" in head.id.lower():
            return True
        if isinstance(head, ast.Attribute) and "log" in head.attr.lower():
            return True
    return False


def describe(analysis: FileAnalysis, node: ast.AST) -> str:
    """A short description of where a dict escapes to, for TODO comments."""
    if isinstance(node, ast.Call):
        return f"`{_short(analysis.text(node.func))}(...)`"
    if isinstance(node, ast.keyword):
        return f"`{_short(analysis.text(node))}` (another call)"
    if isinstance(node, ast.Return):
        return "a return"
    return f"`{_short(analysis.text(node))}`"


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."
