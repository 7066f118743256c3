"""Trainer families for the rules: which calls build a Trainer, which classes derive from one, the `tokenizer=` ->
`processing_class=` machinery, and table-driven rewrites of TrainingArguments-like configs.

Shared by the transformers rules and the TRL rules. A `Family` names one library's trainers: the predicate over the
qualified name of the library class a construction resolves to (a user subclass resolves to its library base,
through local and project intermediates), the gate its `processing_class=` needs (the rule using the family declares
it), and what is reported (unresolvable classes, both keywords given).

- `trainer_callee(ctx, func, family)`: what the callee of a call is ("trainer" of the family, with the user's
  `ClassInfo` for a subclass; "unknown": a `*Trainer` class the codemod cannot resolve; None).
- `trainer_class(ctx, cls, family)`: the `ClassInfo` of a class deriving from one of the family's trainers.
- `rename_keys(ctx, name, renames, is_sink, done)`: a key rename in a same-scope dict that reaches a sink with `**`.
- `ProcessingClass(ctx, family).run()`: `tokenizer=` -> `processing_class=` on constructions (keywords, same-scope
  `**` dicts, `super().__init__(...)` in subclasses), `self.tokenizer` in subclasses that never assign it,
  `trainer.tokenizer` on known trainers, and (`family.callbacks`) the `tokenizer` parameter of TrainerCallback
  events. Reports what it leaves (both keywords, dicts that also go elsewhere, unresolvable `*Trainer` classes).
- `tokenizer_receiver(ctx, expr)`: whether an expression is a tokenizer/processor ("yes", "no", "unknown").
- `Field` tables and `ConfigFields(ctx, fields, applies)`: per-keyword rewrites of config calls (a class whose
  qualified name passes `applies`, the user's subclasses that do not redeclare the field, `dataclasses.replace`),
  of the keys of same-scope dicts passed with `**`, and of attribute reads/writes on objects typed as such configs.
  Each `Field` has its own gate; `Field.plan` says what to do with one item (rename, new value, drop, report).
  Builders: `renamed`, `flag` (a boolean that became a value of another keyword), `values` (literal values
  replaced), `removed`, `reported`; a rule may subclass `Field` for a rule of its own (see transformers-training-args'
  warmup_ratio). `ConfigFields(..., calls=pred)` applies a table to other calls (the loading calls of a model class).

The API is stable: TRL's rules build their own `Family` and `Field` tables on it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from codemods import cstutil, hf
from codemods.flows import DictFlow, describe, dict_flow, dict_value
from codemods.kinds import ClassInfo
from codemods.rule import FileContext
from codemods.rules._keywords import keyword, short

__all__ = [
    "TRANSFORMERS",
    "Change",
    "ConfigFields",
    "Family",
    "Field",
    "Item",
    "ProcessingClass",
    "assigns_attribute",
    "declares_field",
    "flag",
    "init_takes",
    "literal",
    "may_be_trainer",
    "no_successor",
    "pure",
    "removed",
    "rename_keys",
    "renamed",
    "reported",
    "simple_rename",
    "trainer_callee",
    "trainer_class",
    "values",
]

OLD_KW, NEW_KW = "tokenizer", "processing_class"


# ---------------------------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    """One library's trainers.

    name: for messages ("transformers", "TRL"); label: the class users derive from ("transformers.Trainer");
    is_trainer: qualified name of a library class -> one of this family's trainers; gate: the gate of
    `processing_class=` on them (the rule declares it); callbacks: also rename the `tokenizer` parameter of
    TrainerCallback events (transformers only: the events are the Trainer's); report_unknown: report
    `tokenizer=` on `*Trainer` classes the codemod cannot resolve (one family does it, so it is reported once)."""

    name: str
    label: str
    is_trainer: Callable[[str], bool]
    gate: str
    callbacks: bool = False
    report_unknown: bool = False
    # the diagnostic when a construction passes both keywords
    both: str = "both tokenizer= and processing_class= are given (ValueError from 4.46); keep one"


TRANSFORMERS = Family(
    "transformers",
    "transformers.Trainer",
    hf.is_transformers_trainer,
    "processing_class_kwarg",
    callbacks=True,
    report_unknown=True,
)


def _looks_like_trainer(qname: str) -> bool:
    """A class we cannot see whose name says Trainer (`from llava.train.llava_trainer import LLaVATrainer`, a
    relative import without the project): it may derive from transformers.Trainer."""
    name = hf.last(qname)
    return name.endswith("Trainer") and not hf.is_hf(qname)


def trainer_callee(ctx: FileContext, func: ast.AST, family: Family) -> tuple[str, ClassInfo | None] | None:
    """("trainer", the user's class or None) when `func` is one of the family's trainers or a user subclass of one;
    ("unknown", None) for a `*Trainer` class whose bases cannot be resolved; None otherwise."""
    kind = ctx.kinds.kind_of(func)
    if kind is None:
        return None
    if kind.what == "ref":
        if family.is_trainer(kind.qname):
            return "trainer", kind.cls
        if kind.cls is None and _looks_like_trainer(kind.qname):
            return "unknown", None
        return None
    if kind.what == "local" and kind.cls is not None and "Trainer" in kind.cls.name and may_be_trainer(kind.cls):
        return "unknown", None  # the user's `*Trainer` class on a base the codemod cannot resolve
    return None


def may_be_trainer(info: ClassInfo) -> bool:
    """A base of the class is one the codemod cannot resolve and may be a Trainer: an expression it cannot type (not a
    builtin like `object`), a relative import it cannot read, a `*Trainer*` class from a module it cannot see."""
    import builtins

    for expr, base in zip(info.node.bases, info.bases):
        if base is None:
            if not (isinstance(expr, ast.Name) and hasattr(builtins, expr.id) and not info.analysis.reaching(expr)):
                return True
        elif (
            base.what == "ref"
            and base.cls is None
            and not hf.is_hf(base.qname)
            and (base.qname.startswith(".") or "Trainer" in hf.last(base.qname))
        ):
            return True
    return False


def trainer_class(ctx: FileContext, cls: ast.ClassDef, family: Family) -> ClassInfo | None:
    """The class's info when it derives from one of the family's trainers (through the user's own bases)."""
    info = ctx.kinds.class_info(cls)
    base = info.hf_base
    return info if base is not None and family.is_trainer(base) else None


def init_takes(info: ClassInfo | None, param: str) -> bool:
    """The user's classes define `__init__` (the first one in their MRO) with a parameter named `param`: the
    construction keyword is the user's API, not the library's."""
    if info is None:
        return False
    init = info.method("__init__")
    if init is None:
        return False
    args = init.args
    return any(a.arg == param for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])


def assigns_attribute(info: ClassInfo, attr: str) -> bool:
    """Some class of the user's MRO assigns `self.<attr>` (in any method) or defines `<attr>` in its body."""
    for c in info.mro():
        if c.class_attribute(attr) is not None or c.own_method(attr) is not None:
            return True
        a = c.analysis
        for node in a.attributes.get(attr, ()):
            if (
                not isinstance(node.ctx, ast.Load)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and a.enclosing_class(node) is c.node
            ):
                return True
    return False


def declares_field(info: ClassInfo | None, name: str) -> bool:
    """A class of the user's MRO declares `name` in its body (`group_by_length: bool = field(...)`): the user's own
    field then, whatever the library's base does with that name."""
    if info is None:
        return False
    for c in info.mro():
        for stmt in c.node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
                return True
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                return True
    return False


def tokenizer_receiver(ctx: FileContext, recv: ast.AST) -> str:
    """ "yes" (a tokenizer or processor: loaded from a transformers class, `self.processing_class` or an unassigned
    `self.tokenizer` in a Trainer subclass, `trainer.processing_class`/`.tokenizer` on a known trainer), "no" (known
    to be something else: another library's object, the user's own class, `self` outside a Trainer) or "unknown"."""
    if isinstance(recv, ast.Attribute) and recv.attr in (OLD_KW, NEW_KW):
        head = recv.value
        if isinstance(head, ast.Name) and head.id == "self":
            cls = ctx.analysis.enclosing_class(recv)
            info = ctx.kinds.class_info(cls) if cls is not None else None
            trainer = info is not None and info.hf_base is not None and hf.is_trainer_class(info.hf_base)
            if trainer and (recv.attr == NEW_KW or not assigns_attribute(info, OLD_KW)):  # type: ignore[arg-type]
                return "yes"
            return "unknown"
        kind = ctx.kinds.kind_of(head)
        if kind is not None and kind.what == "trainer":
            return "yes"
    if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
        return "no"
    kind = ctx.kinds.kind_of(recv)
    if kind is None:
        return "unknown"
    return "yes" if kind.what in ("tokenizer", "processor") else "no"


def _super_call(call: ast.Call, method: str) -> bool:
    """`super().<method>(...)` or `super(X, self).<method>(...)`."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == method
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    )


# ---------------------------------------------------------------------------------------------- processing_class
class ProcessingClass:
    """`tokenizer=` -> `processing_class=` (and `.tokenizer` -> `.processing_class`) for one family's trainers.
    The calling rule declares `family.gate` among its gates."""

    def __init__(self, ctx: FileContext, family: Family) -> None:
        self.ctx = ctx
        self.family = family
        self._flows_done: set[tuple[int, str]] = set()
        self._classes: dict[int, ClassInfo | None] = {}

    def run(self) -> None:
        a = self.ctx.analysis
        for kw in a.keywords.get(OLD_KW, ()):
            call = a.call_of_keyword(kw)
            if call is not None and not a.in_fstring(call):
                self.construction(call, kw)
        for call in a.calls:
            if any(k.arg is None and isinstance(k.value, ast.Name) for k in call.keywords):
                self.stars(call)
        for node in a.attributes.get(OLD_KW, ()):
            self.attribute(node)
        if self.family.callbacks:
            self.callbacks()

    # -- constructions
    def callee(self, call: ast.Call) -> tuple[str, ClassInfo | None] | None:
        """The family's trainer a call constructs (or `super().__init__`/`Base.__init__(self, ...)` inside one of
        its subclasses calls): ("trainer", info) / ("user", info: its own __init__ takes tokenizer) / ("unknown",
        None) / None."""
        ctx, func = self.ctx, call.func
        if isinstance(func, ast.Attribute) and func.attr == "__init__":
            cls = ctx.analysis.enclosing_class(call)
            if cls is None:
                return None
            if _super_call(call, "__init__") or (
                isinstance(func.value, (ast.Name, ast.Attribute)) and call.args and _is_self(call.args[0])
            ):
                info = trainer_class(ctx, cls, self.family)
                if info is None:
                    return None
                # the next __init__ up the user's chain decides; past the user's classes it is the library's
                bases = [b.cls for b in info.bases if b is not None and b.cls is not None]
                if any(init_takes(b, OLD_KW) for b in bases):
                    return "user", None
                return "trainer", None
            return None
        found = trainer_callee(ctx, func, self.family)
        if found is None:
            return None
        what, info = found
        if what == "trainer" and init_takes(info, OLD_KW):
            return "user", info
        return what, info

    def construction(self, call: ast.Call, kw: ast.keyword) -> None:
        ctx = self.ctx
        found = self.callee(call)
        if found is None or found[0] == "user":
            return
        if found[0] == "unknown":
            if self.family.report_unknown:
                name = short(ctx.analysis.text(call.func), 24)
                ctx.diagnose(
                    kw,
                    f"if {name} derives from {self.family.label}, write processing_class=",
                    "if this class derives from a Trainer, write processing_class=",
                    "if a Trainer subclass, write processing_class=",
                )
            return
        if keyword(call, NEW_KW) is not None:
            ctx.diagnose(kw, self.family.both, "tokenizer= and processing_class= both given; keep one")
            return
        ctx.rename_keyword(kw, NEW_KW)

    def stars(self, call: ast.Call) -> None:
        found = self.callee(call)
        if found is None or found[0] != "trainer":
            return
        for kw in call.keywords:
            if kw.arg is None and isinstance(kw.value, ast.Name):
                self.flow(kw.value)

    def is_sink(self, use: ast.AST, container: ast.AST) -> bool | None:
        if isinstance(use, ast.keyword) and use.arg is None and isinstance(container, ast.Call):
            found = self.callee(container)
            return True if found is not None and found[0] == "trainer" else None
        return None

    def flow(self, name: ast.Name) -> None:
        rename_keys(self.ctx, name, {OLD_KW: NEW_KW}, self.is_sink, self._flows_done)

    # -- attributes
    def attribute(self, node: ast.Attribute) -> None:
        ctx = self.ctx
        recv = node.value
        if isinstance(recv, ast.Name) and recv.id == "self":
            cls = ctx.analysis.enclosing_class(node)
            info = self._trainer_info(cls) if cls is not None else None
            if info is None or assigns_attribute(info, OLD_KW):
                return
            ctx.rename_attribute(node, NEW_KW, "self.tokenizer -> self.processing_class")
            return
        kind = ctx.kinds.kind_of(recv)
        if kind is None or kind.what != "trainer" or not self.family.is_trainer(kind.qname):
            return
        if kind.cls is not None and assigns_attribute(kind.cls, OLD_KW):
            return
        ctx.rename_attribute(node, NEW_KW, "trainer.tokenizer -> trainer.processing_class")

    def _trainer_info(self, cls: ast.ClassDef) -> ClassInfo | None:
        key = id(cls)
        if key not in self._classes:
            self._classes[key] = trainer_class(self.ctx, cls, self.family)
        return self._classes[key]

    # -- callbacks
    def callbacks(self) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        for cls in a.classes:
            base = ctx.kinds.class_info(cls).hf_base
            if base is None or hf.root(base) != "transformers" or hf.last(base) != "TrainerCallback":
                continue
            for stmt in cls.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name.startswith("on_"):
                    self.event(stmt)

    def event(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """`def on_save(self, args, state, control, tokenizer=None, **kwargs)`: since 4.46 the Trainer passes
        `processing_class=`, so `tokenizer` silently stays None; `kwargs["tokenizer"]` is a KeyError."""
        ctx, a = self.ctx, self.ctx.analysis
        args = fn.args
        param = next((p for p in [*args.args, *args.kwonlyargs] if p.arg == OLD_KW), None)
        scope = a.scope_of(param) if param is not None else None
        if param is not None and scope is not None:
            if NEW_KW in scope.locals or any(NEW_KW in a.scope_of(n).locals for n in a.names.get(NEW_KW, ())
                                             if a.enclosing_function(n) is fn):  # fmt: skip
                ctx.diagnose(
                    param,
                    "events pass processing_class=, not tokenizer=; rename this parameter by hand",
                    "events pass processing_class=: rename this parameter",
                )
            else:
                binding = a.binding_for(param)
                ctx.edit(
                    param,
                    lambda p: p.with_changes(name=cst.Name(NEW_KW)),
                    "event parameter tokenizer -> processing_class",
                    header=True,
                )
                for name in a.names.get(OLD_KW, ()):
                    if a.enclosing_function(name) is None or not _inside(a, name, fn):
                        continue
                    if isinstance(name.ctx, ast.Load):
                        reach = a.reaching(name)
                        if reach and binding is not None and all(b.scope is scope for b in reach):
                            ctx.edit(name, lambda n: n.with_changes(value=NEW_KW), "tokenizer -> processing_class",
                                     counted=False)  # fmt: skip
                    elif a.scope_of(name) is scope:
                        ctx.edit(name, lambda n: n.with_changes(value=NEW_KW), "tokenizer -> processing_class",
                                 counted=False)  # fmt: skip
        if args.kwarg is not None:
            self.kwargs_keys(fn, args.kwarg.arg)

    def kwargs_keys(self, fn: ast.AST, kwargs: str) -> None:
        """`kwargs["tokenizer"]`, `kwargs.get("tokenizer")`, `kwargs.pop(...)`, `"tokenizer" in kwargs` on the
        event's `**kwargs` parameter."""
        ctx, a = self.ctx, self.ctx.analysis
        for const in a.strings.get(OLD_KW, ()):
            if not _inside(a, const, fn):
                continue
            parent = a.parent(const)
            head = None
            if isinstance(parent, ast.Subscript) and parent.slice is const:
                head = parent.value
            elif isinstance(parent, ast.Call) and const in parent.args[:1] and isinstance(parent.func, ast.Attribute):
                if parent.func.attr in ("get", "pop", "setdefault"):
                    head = parent.func.value
            elif isinstance(parent, ast.Compare) and parent.left is const and len(parent.comparators) == 1:
                head = parent.comparators[0]
            if isinstance(head, ast.Name) and head.id == kwargs:
                ctx.rename_string(const, OLD_KW, NEW_KW, 'kwargs["tokenizer"] -> kwargs["processing_class"]')


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _inside(a, node: ast.AST, fn: ast.AST) -> bool:
    return any(anc is fn for anc in a.ancestors(node))


def rename_keys(
    ctx: FileContext,
    name: ast.Name,
    renames: Mapping[str, str],
    is_sink: Callable[[ast.AST, ast.AST], bool | None],
    done: set[tuple[int, str]],
) -> None:
    """Rename the keys `renames` of the dict behind `name` (a `**name` into a sink) in every place of its scope:
    literal keys, `dict(k=v)`, `d["k"] = v`, `d.update(k=v)` and the reads; each key use is reported instead when
    the dict also goes elsewhere, comes from outside the scope and is read here, or already has the new key.
    `done`: the (scope, name) pairs already handled (a dict passed to two sinks is planned once)."""
    a = ctx.analysis
    found = a.reaching(name)
    if not found or (id(found[0].scope), name.id) in done:
        return
    done.add((id(found[0].scope), name.id))
    flow = dict_flow(a, name, frozenset(renames), is_sink)
    if flow is None or not flow.sinks or not flow.key_nodes:
        return
    problem = flow_problem(a, flow, renames)
    if problem is not None:
        for key, node in flow.key_nodes:
            ctx.diagnose(
                node,
                f"{problem}; rename its {key} key by hand",
                f"{problem}; rename by hand",
                f"dict used elsewhere too; rename {key} by hand",
                "dict used elsewhere too; rename its key by hand",
            )
        return
    for key, node, _container in flow.key_defs:
        if isinstance(node, ast.keyword):
            ctx.rename_keyword(node, renames[key], f"{key}= -> {renames[key]}= (dict)")
        elif isinstance(node, ast.Constant):
            ctx.rename_string(node, key, renames[key])
    for key, sub in flow.stores:
        ctx.rename_string(sub.slice, key, renames[key])  # type: ignore[arg-type]
    for key, node in flow.reads:
        if isinstance(node, ast.Constant):
            ctx.rename_string(node, key, renames[key])


def flow_problem(a, flow: DictFlow, renames: Mapping[str, str | None]) -> str | None:
    """Why the keys of a dict flow cannot be rewritten where they are (None: they can): the dict also goes elsewhere,
    comes from outside the scope and its keys are read here, or already has the new key."""
    who = short(flow.name, 20)
    if flow.escapes:
        return f"{who} also goes to {short(describe(a, flow.escapes[0]), 28)}"
    if not flow.visible and flow.reads:
        return f"{who} comes from outside this scope"
    for key, _node in flow.key_nodes:
        new = renames.get(key)
        if new is not None and new in flow.all_keys:
            return f"{who} has both {key} and {new}"
    return None


# ---------------------------------------------------------------------------------------------- config fields
@dataclass(frozen=True)
class Item:
    """One keyword of a config call, or one key of a dict that flows into one.

    node: the ast.keyword (a call, `dict(k=v)`, `d.update(k=v)`), the key's string Constant (a dict display), or the
    ast.Subscript of a store `d["k"] = v`; container: the ast.Call, ast.Dict or ast.Assign holding it."""

    key: str
    value: ast.AST | None
    node: ast.AST
    container: ast.AST


ValueFn = Callable[[cst.BaseExpression], cst.BaseExpression]


@dataclass(frozen=True)
class Change:
    """What becomes of one item: `new` the new keyword (None: the item is dropped), `value` a function of the old
    libcst value (None: kept as written)."""

    new: str | None
    value: ValueFn | None = None
    message: str = ""


# changes / a diagnostic (item left: a message, or a tuple of wordings, longest first) / nothing to do
Plan = "list[tuple[Item, Change]] | str | tuple[str, ...] | None"


def _messages(report: str | tuple[str, ...]) -> tuple[str, ...]:
    return (report,) if isinstance(report, str) else report


def literal(code: str) -> ValueFn:
    """A value function: always `code`."""
    return lambda _old: cst.parse_expression(code)


def conditional(on: str, off: str) -> ValueFn:
    """A value function: `<on> if <old value> else <off>`."""
    return lambda old: cst.IfExp(test=old, body=cst.parse_expression(on), orelse=cst.parse_expression(off))


def removable_store(stmt: ast.Assign) -> bool:
    """`d["key"] = value` with a side-effect-free value: the statement can go with the key."""
    target = stmt.targets[0] if len(stmt.targets) == 1 else None
    return isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and pure(stmt.value)


def pure(node: ast.AST | None) -> bool:
    """Dropping this value drops no side effect (literals, names, attributes and operators over them)."""
    if node is None:
        return True
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.Attribute):
        return pure(node.value)
    if isinstance(node, ast.UnaryOp):
        return pure(node.operand)
    if isinstance(node, (ast.BinOp,)):
        return pure(node.left) and pure(node.right)
    if isinstance(node, ast.BoolOp):
        return all(pure(v) for v in node.values)
    if isinstance(node, ast.Compare):
        return pure(node.left) and all(pure(c) for c in node.comparators)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(pure(e) for e in node.elts)
    if isinstance(node, ast.Subscript):
        return pure(node.value) and pure(node.slice)
    if isinstance(node, ast.JoinedStr):
        return all(pure(v.value) if isinstance(v, ast.FormattedValue) else True for v in node.values)
    if isinstance(node, ast.IfExp):
        return pure(node.test) and pure(node.body) and pure(node.orelse)
    return False


def _truth(node: ast.AST | None) -> bool | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    return None


class Field:
    """One keyword of a config class. `gate`: the gate its rewrite needs (None: valid on every supported version).
    `read`: what attribute reads/writes of it on a typed config become (a new attribute name, a diagnostic message
    starting with "!" (shorter wordings for TODO comments after " | "), or None: silent), from `read_gate` on
    (default: `gate`)."""

    def __init__(self, old: str, gate: str | None = None, read: str | None = None, read_gate: str | None = None):
        self.old = old
        self.gate = gate
        self.read = read
        self.read_gate = read_gate or gate

    def with_read(self, read: str | None, read_gate: str | None = None) -> Field:
        """This field with another attribute behaviour (a diagnostic for reads of a flag that is gone, say)."""
        self.read, self.read_gate = read, read_gate or self.gate
        return self

    def plan(self, item: Item, siblings: Mapping[str, Item]) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError


class _Renamed(Field):
    def __init__(self, old: str, new: str, gate: str | None, keep_old_value: bool, unless: Sequence[str]) -> None:
        super().__init__(old, gate, read=new)
        self.new = new
        self.keep_old_value = keep_old_value
        self.unless = tuple(unless)

    def plan(self, item: Item, siblings: Mapping[str, Item]) -> Plan:
        beside = next((k for k in self.unless if k in siblings), None)
        if beside is not None:
            return (
                f"{self.old}= with {beside}=: combine them into {self.new}= by hand",
                f"combine into {self.new}= by hand",
            )
        other = siblings.get(self.new)
        if other is None:
            return [(item, Change(self.new, message=f"{self.old}= -> {self.new}="))]
        if not self.keep_old_value or not isinstance(item.node, ast.keyword) or item.container is not other.container:
            return (f"both {self.old}= and {self.new}= are given; keep {self.new}= only", f"keep {self.new}= only")
        # the old keyword won over the new one where both were accepted: its value is the one that ran
        return [
            (other, Change(None, message=f"{self.new}= dropped (the old {self.old}= won)")),
            (item, Change(self.new, message=f"{self.old}= -> {self.new}=")),
        ]


def renamed(
    old: str, new: str, gate: str | None = None, *, keep_old_value: bool = False, unless: Sequence[str] = ()
) -> Field:
    """`old=X` -> `new=X`; attribute reads and writes renamed too. Both given: a diagnostic, or with
    `keep_old_value` (the library let the old one win) the old value under the new name. `unless`: keywords that
    change what the old one meant (reported when given beside it)."""
    return _Renamed(old, new, gate, keep_old_value, unless)


class _Flag(Field):
    def __init__(self, old, new, on, off, gate, computed, conflict) -> None:
        super().__init__(old, gate, read=f"!{old} is gone: read {new} | gone: read {new}")
        self.new, self.on, self.off, self.computed, self.conflict = new, on, off, computed, conflict

    def plan(self, item: Item, siblings: Mapping[str, Item]) -> Plan:
        truth = _truth(item.value)
        other = siblings.get(self.new)
        if truth is False:
            return [(item, Change(None, message=f"{self.old}=False dropped"))]
        if other is not None and other is not item:
            if (
                self.conflict == "replace"
                and truth is True
                and isinstance(other.node, ast.keyword)
                and (other.container is item.container)
            ):
                return [
                    (other, Change(None, message=f"{self.new}= dropped ({self.old}=True won)")),
                    (item, Change(self.new, literal(self.on), f"{self.old}=True -> {self.new}={self.on}")),
                ]
            if self.conflict == "same" and isinstance(other.value, ast.AST) and _same_literal(other.value, self.on):
                return [(item, Change(None, message=f"{self.old}= dropped ({self.new}= says the same)"))]
            return (f"{self.old}= beside {self.new}=: keep {self.new}= only", f"keep {self.new}= only")
        if truth is True:
            return [(item, Change(self.new, literal(self.on), f"{self.old}=True -> {self.new}={self.on}"))]
        if self.off is None:
            return self.computed
        return [(item, Change(self.new, conditional(self.on, self.off), f"{self.old}=X -> {self.new}=... if X"))]


def _same_literal(node: ast.AST, code: str) -> bool:
    try:
        return ast.literal_eval(node) == ast.literal_eval(code)
    except (ValueError, SyntaxError, TypeError):
        return False


def flag(
    old: str,
    new: str,
    on: str,
    off: str | None = None,
    gate: str | None = None,
    *,
    computed: str = "",
    conflict: str = "report",
) -> Field:
    """A boolean keyword that became a value of another: `old=True` -> `new=<on>`, `old=False` -> dropped (the
    default), a computed `old=X` -> `new=<on> if X else <off>` (or the diagnostic `computed` when `off` is None).
    Beside an explicit `new=`: "replace" (the flag won: `new=<on>`), "same" (dropped when `new=` says `<on>`),
    "report"."""
    report = tuple(computed.split(" | ")) if computed else (f"computed {old}=: write {new}= by hand",)
    return _Flag(old, new, on, off, gate, report, conflict)


class _Removed(Field):
    def __init__(self, old: str, gate: str | None, hint: str) -> None:
        super().__init__(old, gate, read=f"!{old} is gone (AttributeError){hint} | {old} is gone (AttributeError)")
        self.hint = hint

    def plan(self, item: Item, siblings: Mapping[str, Item]) -> Plan:
        if not pure(item.value):
            return (f"{self.old}= is removed; its value is computed here: drop it by hand{self.hint}",
                    f"{self.old}= is removed: drop it by hand", "removed: drop it by hand")  # fmt: skip
        if isinstance(item.container, ast.Assign) and not removable_store(item.container):
            return (f"{self.old} is removed: delete this line{self.hint}", "removed: delete this line")
        return [(item, Change(None, message=f"{self.old}= dropped (removed)"))]


def removed(old: str, gate: str | None = None, hint: str = "") -> Field:
    """A field with no successor: dropped when its value has no side effect, else reported; reads reported."""
    return _Removed(old, gate, hint)


class _Values(Field):
    def __init__(self, old: str, mapping: Mapping, gate: str | None, message: str | None) -> None:
        super().__init__(old, gate)
        self.mapping = dict(mapping)
        self.message = message

    def plan(self, item: Item, siblings: Mapping[str, Item]) -> Plan:
        value = item.value
        if not isinstance(value, ast.Constant):
            return None
        old = value.value
        hit = next((k for k in self.mapping if type(k) is type(old) and k == old), _MISSING)
        if hit is _MISSING:
            return None
        new = self.mapping[hit]

        def fn(cv: cst.BaseExpression) -> cst.BaseExpression:
            if isinstance(old, str) and isinstance(new, str) and isinstance(cv, cst.SimpleString):
                return cv.with_changes(value=cv.value.replace(old, new, 1))  # quotes and prefix kept
            return cst.parse_expression(f'"{new}"' if isinstance(new, str) else repr(new))

        return [(item, Change(self.old, fn, self.message or f"{self.old}={old!r} -> {new!r}"))]


_MISSING = object()


def values(old: str, mapping: Mapping, gate: str | None = None, message: str | None = None) -> Field:
    """Literal values of a keyword replaced: `optim="adamw_hf"` -> `optim="adamw_torch"`, `report_to=None` ->
    `report_to="none"` (keys compared with their type: `None`, `True` and `1` differ). `message`: the rewrite's."""
    return _Values(old, mapping, gate, message)


class _Reported(Field):
    def __init__(self, old: str, gate: str | None, message: str | tuple[str, ...], read: str | None) -> None:
        super().__init__(old, gate, read=read)
        self.message = message

    def plan(self, item: Item, siblings: Mapping[str, Item]) -> Plan:
        return self.message


def reported(old: str, gate: str | None, message: str | tuple[str, ...], read: str | None = None) -> Field:
    """A keyword the codemod cannot rewrite: every use is reported (`message`: or its wordings, longest first;
    `read`: for attribute reads, "!message | shorter")."""
    return _Reported(old, gate, message, read)


class ConfigFields:
    """Applies a `Field` table to the config classes `applies` accepts (qualified names of library classes; the
    user's subclasses resolve to their base), for one rule. The rule declares every field's gate in its
    `item_gates`; fields below their gate at the current targets are left silently."""

    def __init__(
        self,
        ctx: FileContext,
        fields: Iterable[Field],
        applies: Callable[[str], bool],
        calls: Callable[[ast.Call], bool] | None = None,
    ) -> None:
        """`calls`: recognise the target calls another way (e.g. transformers' loading calls); `applies` then only
        types attribute reads."""
        self.ctx = ctx
        self.applies = applies
        self.calls = calls
        fields = list(fields)
        self.fields = {f.old: f for f in fields if f.gate is None or ctx.target_meets(f.gate)}
        self.reads = {f.old: f for f in fields if f.read and (f.read_gate is None or ctx.target_meets(f.read_gate))}
        self._flows_done: set[tuple[int, str]] = set()

    # -- receivers
    def config_call(self, call: ast.Call) -> tuple[bool, ClassInfo | None] | None:
        """(True, the user's class) when the call builds a config (`applies`), or is `dataclasses.replace(cfg, ...)`
        of a typed one; None otherwise."""
        if self.calls is not None:
            return (True, None) if self.calls(call) else None
        kind = self.ctx.kinds.kind_of(call.func)
        if kind is None or kind.what != "ref":
            return None
        if self.applies(kind.qname):
            return True, kind.cls
        if kind.qname == "dataclasses.replace" and call.args:
            inner = self.ctx.kinds.kind_of(call.args[0])
            if inner is not None and inner.what == "args" and self.applies(inner.qname):
                return True, inner.cls
        return None

    def run(self) -> None:
        a = self.ctx.analysis
        for call in a.calls_passing(self.fields):
            self.call(call)
        for name, field in self.reads.items():
            for node in a.attributes.get(name, ()):
                self.attribute(node, field)

    def call(self, call: ast.Call) -> None:
        if self.ctx.analysis.in_fstring(call):
            return
        found = self.config_call(call)
        if found is None:
            return
        _, info = found
        items = {
            kw.arg: Item(kw.arg, kw.value, kw, call)
            for kw in call.keywords
            if kw.arg is not None and not declares_field(info, kw.arg)
        }
        self.plan_items(items, info)
        for kw in call.keywords:
            if kw.arg is None and isinstance(kw.value, ast.Name):
                self.flow(kw.value, info)

    def plan_items(self, items: Mapping[str, Item], info: ClassInfo | None) -> None:
        done: set[int] = set()
        for key, item in items.items():
            field = self.fields.get(key)
            if field is None or id(item.node) in done or declares_field(info, key):
                continue
            plan = field.plan(item, items)
            if isinstance(plan, (str, tuple)):
                self.ctx.diagnose(item.node, *_messages(plan))
            elif plan:
                done.update(id(target.node) for target, _ in plan)
                self.apply_plan(plan)

    # -- dicts passed with **
    def is_sink(self, use: ast.AST, container: ast.AST) -> bool | None:
        if isinstance(use, ast.keyword) and use.arg is None and isinstance(container, ast.Call):
            return True if self.config_call(container) is not None else None
        return None

    def flow(self, name: ast.Name, info: ClassInfo | None) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        found = a.reaching(name)
        if not found or (id(found[0].scope), name.id) in self._flows_done:
            return
        self._flows_done.add((id(found[0].scope), name.id))
        keys = frozenset(self.fields)
        flow = dict_flow(a, name, keys, self.is_sink)
        if flow is None or not flow.sinks or not flow.key_nodes:
            return
        renames = {k: getattr(f, "new", None) for k, f in self.fields.items()}
        problem = flow_problem(a, flow, renames)
        if problem is not None:
            for key, node in flow.key_nodes:
                ctx.diagnose(
                    node,
                    f"{problem}; change its {key} key by hand",
                    f"{problem}; change it by hand",
                    f"dict used elsewhere too; change {key} by hand",
                    "dict used elsewhere too; change its key by hand",
                )
            return
        items: list[Item] = []  # every place that sets a key (a key set in two places is changed in both)
        for key, node, container in flow.key_defs:
            value = node.value if isinstance(node, ast.keyword) else dict_value(container, node)
            items.append(Item(key, value, node, container))
        for key, sub in flow.stores:
            assign = a.parent(sub)
            if isinstance(assign, ast.Assign) and len(assign.targets) == 1:
                items.append(Item(key, assign.value, sub, assign))
        # the first setting of each literal key of the flow, for the fields that look at their siblings
        siblings: dict[str, Item] = {}
        for item in items:
            siblings.setdefault(item.key, item)
        for key in flow.all_keys:
            if key not in siblings:
                siblings[key] = Item(key, None, name, name)
        changed: dict[str, Change] = {}
        for item in items:
            key = item.key
            field = self.fields.get(key)
            if field is None or declares_field(info, key):
                continue
            plan = field.plan(item, siblings)
            if isinstance(plan, (str, tuple)):
                ctx.diagnose(item.node, *_messages(plan))
            elif plan:
                changed.update((target.key, change) for target, change in plan)
                self.apply_plan(plan)
        for key, node in flow.reads:
            change = changed.get(key)
            if change is None:
                continue
            if change.new is not None and change.value is None and isinstance(node, ast.Constant):
                ctx.rename_string(node, key, change.new)
            else:
                ctx.diagnose(
                    node,
                    f'"{key}" is read here but rewritten where the dict is built; adjust by hand',
                    "this key is rewritten where the dict is built; adjust it",
                )

    # -- attributes of typed configs
    def attribute(self, node: ast.Attribute, field: Field) -> None:
        ctx = self.ctx
        recv = node.value
        if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
            return
        kind = ctx.kinds.kind_of(recv)
        if kind is None or kind.what != "args" or not self.applies(kind.qname) or declares_field(kind.cls, node.attr):
            return
        if ctx.analysis.in_fstring(node):
            return
        read = field.read
        assert read is not None
        if read.startswith("!"):
            ctx.diagnose(node, *_messages(tuple(read[1:].split(" | "))))
        else:
            ctx.rename_attribute(node, read)

    # -- edits
    def apply_plan(self, plan: Sequence[tuple[Item, Change]]) -> None:
        """The changes of one plan. Keyword changes of one call that drop a keyword are one edit of the call,
        matched by the keywords' original names (`eval_strategy="no", evaluation_strategy="steps"` ->
        `eval_strategy="steps"`: a rename to the name being dropped must not be taken for it)."""
        calls: dict[int, list[tuple[Item, Change]]] = {}
        for item, change in plan:
            if isinstance(item.node, ast.keyword) and isinstance(item.container, ast.Call):
                calls.setdefault(id(item.container), []).append((item, change))
        grouped: set[int] = set()
        for group in calls.values():
            if len(group) > 1 and any(change.new is None for _, change in group):
                grouped.update(id(item.node) for item, _ in group)
                changes = {item.key: change for item, change in group}
                message = "; ".join(change.message or f"{item.key}= rewritten" for item, change in group)
                self.ctx.edit(group[0][0].container, _change_keywords(changes), message, at=group[0][0].node)
        for item, change in plan:
            if id(item.node) not in grouped:
                self.apply(item, change)

    def apply(self, item: Item, change: Change) -> None:
        ctx = self.ctx
        node, container = item.node, item.container
        message = change.message or f"{item.key}= rewritten"
        if isinstance(node, ast.keyword):
            if change.new is None:
                ctx.edit(container, _drop_keyword(item.key), message, at=node)
            elif change.value is None:
                ctx.rename_keyword(node, change.new, message)
            else:
                new, value = change.new, change.value
                ctx.edit(node, lambda arg: arg.with_changes(keyword=cst.Name(new), value=value(arg.value)), message)
        elif isinstance(container, ast.Dict):
            ctx.edit(container, _dict_item(item.key, change), message, at=node)
        elif isinstance(container, ast.Assign) and isinstance(node, ast.Subscript):
            if change.new is None:
                if not (removable_store(container) and ctx.remove_statement(container, message)):
                    ctx.diagnose(node, f"{item.key} is removed: delete this line")
                return
            if change.new != item.key:
                ctx.rename_string(node.slice, item.key, change.new, message)  # type: ignore[arg-type]
            if change.value is not None:
                value = change.value
                ctx.edit(container, lambda s: s.with_changes(value=value(s.value)), message,
                         counted=change.new == item.key)  # fmt: skip


def _change_keywords(changes: Mapping[str, Change]) -> Callable[[cst.Call], cst.Call]:
    def fn(call: cst.Call) -> cst.Call:
        args, drop = list(call.args), set()
        for i, arg in enumerate(args):
            change = changes.get(arg.keyword.value) if arg.keyword is not None else None
            if change is None:
                continue
            if change.new is None:
                drop.add(i)
            else:
                value = change.value(arg.value) if change.value is not None else arg.value
                args[i] = arg.with_changes(keyword=cst.Name(change.new), value=value)
        return call.with_changes(args=cstutil.without_args(args, drop))

    return fn


def _drop_keyword(name: str) -> Callable[[cst.Call], cst.Call]:
    def fn(call: cst.Call) -> cst.Call:
        drop = {i for i, arg in enumerate(call.args) if arg.keyword is not None and arg.keyword.value == name}
        return call.with_changes(args=cstutil.without_args(call.args, drop)) if drop else call

    return fn


def _key_of(element: cst.BaseDictElement) -> str | None:
    key = getattr(element, "key", None)
    if isinstance(key, cst.SimpleString):
        value = key.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _dict_item(key: str, change: Change) -> Callable[[cst.Dict], cst.Dict]:
    def fn(d: cst.Dict) -> cst.Dict:
        elements = list(d.elements)
        for i, el in enumerate(elements):
            if _key_of(el) != key or not isinstance(el, cst.DictElement):
                continue
            if change.new is None:
                kept = elements[:i] + elements[i + 1 :]
                if kept and i == len(elements) - 1:
                    kept[-1] = kept[-1].with_changes(comma=el.comma)
                return d.with_changes(elements=kept)
            quoted = el.key.value  # type: ignore[union-attr]
            quote = quoted[-1]
            new_key = el.key.with_changes(value=quoted[: quoted.index(quote) + 1] + change.new + quote)  # type: ignore
            value = change.value(el.value) if change.value is not None else el.value
            elements[i] = el.with_changes(key=new_key, value=value)
            return d.with_changes(elements=elements)
        return d

    return fn


def simple_rename(field: Field) -> str | None:
    """The new name of a field that is a plain rename (`renamed(...)` without `unless`), else None: what a rename
    outside Python (a YAML recipe's key) can apply."""
    return field.new if isinstance(field, _Renamed) and not field.unless else None


def no_successor(field: Field) -> bool:
    """The field is gone without a successor (`removed(...)`)."""
    return isinstance(field, _Removed)
