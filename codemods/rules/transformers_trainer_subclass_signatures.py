"""transformers-trainer-subclass-signatures: Trainer overrides take the arguments today's Trainer passes.

The Trainer calls `compute_loss(model, inputs, num_items_in_batch=...)` and `training_step(model, inputs,
num_items_in_batch)` from 4.46, `log(logs, start_time)` from 4.47 (gate `trainer_log_start_time`),
`_get_train_sampler(train_dataset)` from 4.52 (`train_sampler_dataset_arg`), `create_optimizer(model)` from 5.3 on
the delayed-optimizer path (`create_optimizer_model_arg`): an old override raises TypeError at the first step. The
added parameters default to None, so the new signatures run on every version; a `super()` call passes the argument
on only where the base method takes it at the target.

The gradient-accumulation trap: once `compute_loss` takes `num_items_in_batch`, the Trainer takes a model that
accepts loss kwargs to return a loss already normalised over the accumulated batch, and stops dividing by
`gradient_accumulation_steps`: a per-batch mean loss then gives gradients x GA. When the override does not use
`num_items_in_batch` (nor return the base's loss), the class declares its loss unscaled: `loss_is_scaled_for_ga =
False` (5.19, `loss_is_scaled_for_ga`) and, below a 5.19 target, `self.model_accepts_loss_kwargs = False` after
`super().__init__(...)` (honoured from 4.48, `custom_loss_ga_scaling`; an `__init__` is added when the class has
none). Below a 4.48 target nothing declarative helps on 4.46-4.47: the declarations go in for the newer versions and
a TODO says so. Reported: a `training_step` that calls `backward` itself, an `__init__` that never initialises the
base, a class whose base the codemod cannot resolve.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import libcst as cst

from codemods import cstutil, hf
from codemods.analysis import string_value
from codemods.kinds import ClassInfo
from codemods.rule import FileContext, Rule
from codemods.rules._trainers import _super_call, assigns_attribute, may_be_trainer

NUM_ITEMS = "num_items_in_batch"
DECLARATION = "loss_is_scaled_for_ga = False"
INIT_DECLARATION = "self.model_accepts_loss_kwargs = False"


@dataclass(frozen=True)
class _Method:
    name: str
    param: str  # the argument the Trainer now passes
    positional: int  # the parameters before it (self excluded); -1: passed by keyword
    super_gate: str | None  # from this gate on, the base method takes it (None: on every supported version)


METHODS = {
    m.name: m
    for m in (
        _Method("compute_loss", NUM_ITEMS, -1, None),
        _Method("training_step", NUM_ITEMS, 2, None),
        _Method("log", "start_time", 1, "trainer_log_start_time"),
        _Method("_get_train_sampler", "train_dataset", 0, "train_sampler_dataset_arg"),
        _Method("create_optimizer", "model", 0, "create_optimizer_model_arg"),
    )
}


def _positional(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    return [*fn.args.posonlyargs, *fn.args.args]


def _takes(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: _Method) -> bool:
    """The override already accepts what the Trainer passes."""
    args = fn.args
    names = {a.arg for a in [*_positional(fn), *args.kwonlyargs]}
    if method.positional < 0:
        return method.param in names or args.kwarg is not None
    return args.vararg is not None or len(_positional(fn)) - 1 > method.positional


def _append_param(name: str, explode_indent: str | None):
    """fn for a libcst FunctionDef: `name=None` after the last positional parameter (kept on its own line when the
    signature is written one parameter per line; `explode_indent`: then one parameter per line, the line having grown
    past the line length)."""

    def fn(node: cst.FunctionDef) -> cst.FunctionDef:
        new = _appended(node)
        return cstutil.one_param_per_line(new, explode_indent) if explode_indent is not None else new

    def _appended(node: cst.FunctionDef) -> cst.FunctionDef:
        params = node.params
        items = list(params.params)
        new = cst.Param(name=cst.Name(name), default=cst.Name("None"), equal=cstutil.NO_SPACE)
        if not items:
            return node.with_changes(params=params.with_changes(params=[new]))
        last = items[-1]
        follows = params.star_arg is not cst.MaybeSentinel.DEFAULT or params.kwonly_params or params.star_kwarg
        if follows or isinstance(last.comma, cst.Comma):
            # a comma follows the last parameter already: the new one takes it, the last one a copy of the layout
            sample = items[-2].comma if len(items) > 1 and isinstance(items[-2].comma, cst.Comma) else None
            comma = sample or cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            if follows and not isinstance(last.comma, cst.Comma):
                last_comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            else:
                last_comma = last.comma
            items[-1] = last.with_changes(comma=comma)
            items.append(new.with_changes(comma=last_comma, whitespace_after_param=last.whitespace_after_param))
            if isinstance(items[-2].comma, cst.Comma) and sample is None and follows:
                items[-2] = items[-2].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        else:
            sample = items[-2].comma if len(items) > 1 and isinstance(items[-2].comma, cst.Comma) else None
            comma = sample or cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            items[-1] = last.with_changes(comma=comma, whitespace_after_param=cst.SimpleWhitespace(""))
            items.append(new.with_changes(whitespace_after_param=last.whitespace_after_param))
        return node.with_changes(params=params.with_changes(params=items))

    return fn


def _add_argument(name: str, keyword: bool):
    """fn for a libcst Call: pass `name` on (positional after the last positional argument, or `name=name`)."""

    def fn(node: cst.Call) -> cst.Call:
        args = list(node.args)
        if keyword:
            new = cstutil.kwarg(name, cst.Name(name))
            index = len(args)
        else:
            new = cst.Arg(value=cst.Name(name))
            index = max((i + 1 for i, a in enumerate(args) if a.keyword is None and not a.star), default=0)
        args.insert(index, new)
        return node.with_changes(args=cstutil.with_commas(args, node.args, frozenset({index})))

    return fn


class TransformersTrainerSubclassSignatures(Rule):
    id = "transformers-trainer-subclass-signatures"
    summary = "Trainer overrides: compute_loss/training_step/log/_get_train_sampler/create_optimizer; GA trap closed"
    triggers = ("compute_loss", "training_step", "def log", "_get_train_sampler", "create_optimizer")
    trigger_regex = re.compile(r"\bdef[ \t]+(?:compute_loss|training_step|log|_get_train_sampler|create_optimizer)\b")
    item_gates = ("trainer_log_start_time", "train_sampler_dataset_arg", "create_optimizer_model_arg",
                  "custom_loss_ga_scaling", "loss_is_scaled_for_ga")  # fmt: skip

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        for cls in ctx.analysis.classes:
            methods = [
                s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name in METHODS
            ]
            if not methods:
                continue
            info = ctx.kinds.class_info(cls)
            base = info.hf_base
            if base is not None and hf.is_trainer_class(base):
                for fn in methods:
                    self.method(info, fn)
            elif base is None and may_be_trainer(info):
                for fn in methods:
                    if (
                        fn.name in ("compute_loss", "training_step")
                        and _trainer_shaped(fn)
                        and not _takes(fn, METHODS[fn.name])
                    ):
                        ctx.diagnose(
                            fn,
                            f"if {cls.name} derives from transformers.Trainer, {fn.name} must take {NUM_ITEMS}=None",
                            f"if a Trainer subclass, {fn.name} must take {NUM_ITEMS}=None",
                            f"if a Trainer, add {NUM_ITEMS}=None",
                        )

    # ------------------------------------------------------------------ one override
    def method(self, info: ClassInfo, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        ctx = self.ctx
        method = METHODS[fn.name]
        has_param = _takes(fn, method)
        if not has_param:
            ctx.edit(
                fn,
                _append_param(method.param, self.explode(fn, f", {method.param}=None")),
                f"{fn.name}(..., {method.param}=None)",
                cst_type=cst.FunctionDef,
                header=True,
            )
        bound = not has_param or method.param in {a.arg for a in [*_positional(fn), *fn.args.kwonlyargs]}
        supers = [(c, False) for c in _calls_in(ctx, fn) if _super_call(c, fn.name)]
        supers += [(c, True) for c in _calls_in(ctx, fn) if self.base_call(c, fn.name)]
        if bound and (method.super_gate is None or ctx.target_meets(method.super_gate)):
            for call, explicit_self in supers:
                if not _passes(call, method, explicit_self):
                    ctx.edit(
                        call,
                        _add_argument(method.param, keyword=method.positional < 0),
                        f"super().{fn.name}(..., {method.param})",
                    )
        if fn.name == "compute_loss" and not supers and not _uses(ctx, fn, NUM_ITEMS):
            self.declare_unscaled(info, fn)
        if fn.name == "training_step" and not supers:
            self.own_backward(fn)

    def base_call(self, call: ast.Call, name: str) -> bool:
        """`Trainer.<name>(self, ...)`: the base method called through a Trainer class (the user's or the library's)."""
        if not _through_class(call, name):
            return False
        kind = self.ctx.kinds.kind_of(call.func.value)  # type: ignore[attr-defined]
        return kind is not None and kind.what == "ref" and hf.is_trainer_class(kind.qname)

    def explode(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, added: str) -> str | None:
        """The indentation of one parameter per line when `added` pushes the line of the last parameter past the
        line length (a line already too long is left as it is), else None."""
        ctx = self.ctx
        args = fn.args
        last = _positional(fn)[-1]
        ends = [last.end_lineno or last.lineno]
        if args.defaults:
            ends.append(args.defaults[-1].end_lineno or 0)
        line = ctx.text.line(max(ends))
        if len(line) > cstutil.MAX_LINE or len(line) + len(added) <= cstutil.MAX_LINE:
            return None
        if (fn.end_lineno or fn.lineno) != fn.lineno and max(ends) != fn.lineno and line.rstrip().endswith(","):
            return None  # one parameter per line already: the new one gets a line of its own
        return ctx.text.indent_unit

    def own_backward(self, fn: ast.AST) -> None:
        ctx = self.ctx
        if "gradient_accumulation_steps" in ctx.analysis.segment(fn) or _uses(ctx, fn, NUM_ITEMS):
            return
        for call in _calls_in(ctx, fn):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "backward":
                ctx.diagnose(
                    call,
                    "backward() here: divide the loss by self.args.gradient_accumulation_steps (the Trainer won't)",
                    "divide this loss by gradient_accumulation_steps yourself",
                    "divide the loss by the GA steps yourself",
                )

    # ------------------------------------------------------------------ the GA declaration
    def declare_unscaled(self, info: ClassInfo, fn: ast.AST) -> None:
        ctx = self.ctx
        declared = any(c.class_attribute("loss_is_scaled_for_ga") is not None for c in info.mro())
        if declared or assigns_attribute(info, "model_accepts_loss_kwargs"):
            return
        cls = info.node
        body = cls.body
        doc = body[0] if isinstance(body[0], ast.Expr) and string_value(body[0].value) is not None else None
        message = f"{DECLARATION} (the loss is a per-batch mean)"
        if doc is not None:
            blank = not ctx.text.line((doc.end_lineno or doc.lineno) + 1).strip()
            ctx.insert_after(doc, "\n" + DECLARATION + ("" if blank else "\n"), message, at=fn)
        else:
            ctx.insert_before(body[0], DECLARATION + "\n\n", message, at=fn)
        if not ctx.target_meets("loss_is_scaled_for_ga"):
            self.declare_in_init(info)
        if not ctx.target_meets("custom_loss_ga_scaling"):
            ctx.todo(fn, "loss is x GA on transformers 4.46-4.47", "loss is x GA on 4.46-4.47")

    def declare_in_init(self, info: ClassInfo) -> None:
        ctx = self.ctx
        cls = info.node
        init = info.own_method("__init__")
        if init is None:
            first = next(s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
            ctx.insert_before(
                first,
                "def __init__(self, *args, **kwargs):\n"
                "    super().__init__(*args, **kwargs)\n"
                f"    {INIT_DECLARATION}\n\n",
            )
            return
        base_init = next((c for c in _calls_in(ctx, init) if _base_init(c)), None)
        if base_init is None:
            ctx.diagnose(
                init,
                f"no super().__init__() here: set {INIT_DECLARATION} after the Trainer is set up",
                f"set {INIT_DECLARATION} after the base __init__",
                "set model_accepts_loss_kwargs = False here",
            )
            return
        stmt = ctx.analysis.statement_of(base_init)
        assert stmt is not None
        ctx.insert_after(stmt, INIT_DECLARATION)


def _calls_in(ctx: FileContext, fn: ast.AST) -> list[ast.Call]:
    """The calls inside a function (from the index: no walk of our own)."""
    start, end = fn.lineno, fn.end_lineno or fn.lineno
    out = []
    for call in ctx.analysis.calls:
        if call.lineno < start:
            continue
        if call.lineno > end:
            break
        if any(anc is fn for anc in ctx.analysis.ancestors(call)):
            out.append(call)
    return out


def _uses(ctx: FileContext, fn: ast.AST, name: str) -> bool:
    """`name` is read in the function (a Name, or a key of its **kwargs)."""
    a = ctx.analysis
    for node in a.names.get(name, ()):
        if isinstance(node.ctx, ast.Load) and any(anc is fn for anc in a.ancestors(node)):
            return True
    return any(any(anc is fn for anc in a.ancestors(s)) for s in a.strings.get(name, ()))


def _passes(call: ast.Call, method: _Method, explicit_self: bool = False) -> bool:
    """The base call already passes the argument (or may: `*args`, `**kwargs`). `explicit_self`: `Base.m(self, ...)`."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return True
    if any(k.arg == method.param for k in call.keywords):
        return True
    count = len(call.args) - explicit_self
    if method.positional < 0:
        return count >= 4  # compute_loss(model, inputs, return_outputs, num_items_in_batch)
    return count > method.positional


def _base_init(call: ast.Call) -> bool:
    """`super().__init__(...)`, `super(X, self).__init__(...)` or `Base.__init__(self, ...)`."""
    return _super_call(call, "__init__") or _through_class(call, "__init__")


def _through_class(call: ast.Call, method: str) -> bool:
    """`Base.<method>(self, ...)` (or `pkg.Base.<method>(self, ...)`): a method called through a class."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == method
        and isinstance(func.value, (ast.Name, ast.Attribute))
        and bool(call.args)
        and isinstance(call.args[0], ast.Name)
        and call.args[0].id == "self"
    )


def _trainer_shaped(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """`(self, model, inputs, ...)`: the Trainer's parameter names (Lightning's training_step takes batch, idx)."""
    names = [a.arg for a in _positional(fn)]
    return names[1:3] == ["model", "inputs"]
