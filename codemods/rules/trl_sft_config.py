"""trl-sft-config: `SFTTrainer(max_seq_length=, packing=, dataset_text_field=, ...)` -> the `SFTConfig` passed as
`args`, and `max_seq_length` -> `max_length`.

TRL 0.9.2 moved the SFT knobs from `SFTTrainer`'s keywords into `SFTConfig` (gate `trl_trainer_configs`; the
keywords raise TypeError from 0.13); 0.16 renamed `max_seq_length` to `max_length` (`trl_sft_max_length`, TypeError
from 0.20); 0.18 dropped the ConstantLengthDataset packing knobs (`trl_sft_packing_knobs_removed`).

Where the moved keywords go, by what `args` is at the call:
- an inline `SFTConfig(...)` (or the user's subclass): appended to it;
- a name bound once in the same scope to `SFTConfig(...)`, read nowhere else but as `name.attr`: appended there;
- anything else (an inline or parsed `TrainingArguments`, a parameter, a name bound twice, `self.args`):
  `args=compat.trl_config(SFTConfig, <args>, <moved>)`, which converts the way TRL converts a TrainingArguments and
  keeps its defaults (a `TrainingArguments` -> `SFTConfig` rename would change learning_rate, bf16,
  gradient_checkpointing and logging_steps: MIGRATION.md#compattrl_config);
- no `args` at all: reported (there is no output_dir to invent).
Renamed on the way (and in `SFTConfig(...)` itself, `dataclasses.replace`, dicts passed with `**`, attribute reads):
`max_seq_length` -> `max_length`; dropped with a TODO naming the mechanism: `num_of_sequences`, `chars_per_token`,
`dataset_batch_size` (0.18), `infinite` (never a config field). Reported: moved keywords inside a `**` dict, a
keyword given to both the trainer and its config, a `formatting_func` that returns a list of texts (called per
example from TRL 0.17). The `TrainerMoves` machinery here is shared with trl-dpo-config.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from codemods import cstutil, hf
from codemods.analysis import Binding
from codemods.flows import dict_flow
from codemods.kinds import ClassInfo
from codemods.rule import FileContext, Rule
from codemods.rules._keywords import short
from codemods.rules._trainers import Change, ConfigFields, Field, Item, init_takes, pure, renamed

COMPAT = "compat"
CONFIGS_GATE = "trl_trainer_configs"
MAX_LENGTH_GATE = "trl_sft_max_length"
KNOBS_GATE = "trl_sft_packing_knobs_removed"
FORMATTING_GATE = "trl_formatting_func_per_example"


# -------------------------------------------------------------------------------------------- fields with no successor
class TodoChange(Change):
    """A dropped item whose field (`Gone`) names what replaces it in a TODO line."""


def gone_todos(key: str, value: ast.AST | None, segment: str, when: str, hints: Sequence[str]) -> tuple[str, ...]:
    """`key=<literal> dropped (TRL x.y): <hint>` wordings, longest first; the value only when it is a short literal."""
    out = []
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
        value = value.operand
    literal = isinstance(value, ast.Constant) and len(segment) <= 16
    heads = ([f"{key}={segment}"] if literal else []) + [key]
    for head in heads:
        for hint in hints:
            out.append(f"{head} dropped ({when}): {hint}")
    return tuple(out)


class Gone(Field):
    """A config field with no successor from `gate` on: the keyword (or dict key) is dropped with a TODO naming the
    mechanism that replaces it (`hints`, longest wording first); a computed value with a side effect is reported
    instead; attribute reads are reported."""

    def __init__(self, old: str, gate: str | None, when: str, *hints: str) -> None:
        super().__init__(old, gate, read=f"!{old} is gone ({when}): {hints[-1]}")
        self.when = when
        self.hints = hints

    def plan(self, item: Item, siblings: Mapping[str, Item]):
        if not pure(item.value):
            return f"{self.old}= is gone ({self.when}) and its value is computed here: drop it by hand"
        return [(item, TodoChange(None, message=f"{self.old}= dropped (gone in {self.when})"))]

    def todos(self, value: ast.AST | None, segment: str) -> tuple[str, ...]:
        return gone_todos(self.old, value, segment, self.when, self.hints)


class TodoConfigFields(ConfigFields):
    """ConfigFields whose dropped items also get their TODO line (`Gone` fields), and which reports a `**name` dict
    from outside the scope when the config has fields that are renamed or gone at the target."""

    def __init__(self, ctx: FileContext, fields: Iterable[Field], applies: Callable[[str], bool]) -> None:
        super().__init__(ctx, fields, applies)
        self._outside: set[int] = set()

    def flow(self, name: ast.Name, info: ClassInfo | None) -> None:
        super().flow(name, info)
        a = self.ctx.analysis
        found = a.reaching(name)
        if not self.fields or (found and id(found[0]) in self._outside):
            return
        flow = dict_flow(a, name, frozenset(self.fields), self.is_sink) if found else None
        if found and (flow is None or flow.visible or flow.key_nodes):
            return
        if found:
            self._outside.add(id(found[0]))
        call = a.parent(a.parent(name))
        names = ", ".join(sorted(self.fields))
        self.ctx.diagnose(
            call if isinstance(call, ast.Call) else name,
            f"**{short(name.id, 16)} comes from outside: rename/drop its {names} where it is built",
            f"**{short(name.id, 16)} comes from outside: check its keys ({short(names, 40)}) where it is built",
            f"**{short(name.id, 16)} comes from outside: check its keys where it is built",
        )

    def apply_plan(self, plan) -> None:
        super().apply_plan(plan)
        for item, change in plan:
            field = self.fields.get(item.key)
            if isinstance(change, TodoChange) and isinstance(field, Gone):
                segment = self.ctx.analysis.segment(item.value) if item.value is not None else ""
                self.ctx.todo(item.node, *field.todos(item.value, segment))


def trl_class(names: Iterable[str]) -> Callable[[str], bool]:
    wanted = frozenset(names)
    return lambda qname: hf.root(qname) == "trl" and hf.last(qname) in wanted


# ---------------------------------------------------------------------------------------------- moved keywords
@dataclass(frozen=True)
class Move:
    """What becomes of one moved trainer keyword: `new` its name in the config (None: dropped, with `todos`)."""

    kw: ast.keyword
    new: str | None
    todos: tuple[str, ...] = ()


class TrainerMoves:
    """Moves the keywords `moved` of the `trainers` (TRL class names; the user's subclasses whose own `__init__`
    does not take them) into the `config` passed as `args`, through the `fields` table of that config (renames,
    fields that are gone). `args_position`: the index of a positional `args` (None: keyword only; then a call with
    more than `max_positional` positional arguments is reported, their meaning changed between versions)."""

    def __init__(
        self,
        ctx: FileContext,
        trainers: frozenset[str],
        config: str,
        moved: Sequence[str],
        fields: Iterable[Field],
        *,
        args_position: int | None = None,
        max_positional: int = 99,
        always_gone: Mapping[str, tuple[str, tuple[str, ...]]] = {},
    ) -> None:
        self.ctx = ctx
        self.trainers = trainers
        self.config = config
        self.moved = frozenset(moved)
        self.fields = {f.old: f for f in fields if f.gate is None or ctx.target_meets(f.gate)}
        self.args_position = args_position
        self.max_positional = max_positional
        self.always_gone = always_gone  # trainer-only keywords: (when, hints), dropped whenever they move

    # -- which calls
    def trainer(self, call: ast.Call) -> tuple[bool, ClassInfo | None]:
        kind = self.ctx.kinds.kind_of(call.func)
        if kind is None or kind.what != "ref" or hf.root(kind.qname) != "trl":
            return False, None
        return hf.last(kind.qname) in self.trainers, kind.cls

    def run(self) -> None:
        for call in self.ctx.analysis.calls_passing(sorted(self.moved)):
            self.call(call)

    def call(self, call: ast.Call) -> None:
        ctx = self.ctx
        if ctx.analysis.in_fstring(call):
            return
        ok, info = self.trainer(call)
        if not ok:
            return
        label = hf.last(ctx.analysis.text(call.func))
        for kw in call.keywords:
            if kw.arg is None and isinstance(kw.value, ast.Name):
                self.star(kw.value, label)
        moved = [kw for kw in call.keywords if kw.arg in self.moved and not init_takes(info, kw.arg)]
        if not moved:
            return
        if len(call.args) > self.max_positional:
            ctx.diagnose(
                moved[0],
                f"{label} takes more positional arguments here than today's: write them as keywords, then move "
                f"{moved[0].arg}= into {self.config}",
                f"positional arguments changed meaning: use keywords, move {moved[0].arg}= to {self.config}",
            )
            return
        args_node = self.args_of(call)
        if args_node is None:
            ctx.diagnose(
                moved[0],
                f"{label} has no args=: pass args={self.config}(output_dir=..., {moved[0].arg}=...)",
                f"no args=: pass args={self.config}(..., {moved[0].arg}=...)",
            )
            return
        moves = [self.plan(kw) for kw in moved]
        if any(m is None for m in moves):
            return
        self.apply(call, args_node, [m for m in moves if m is not None])

    def star(self, name: ast.Name, label: str) -> None:
        flow = dict_flow(self.ctx.analysis, name, self.moved, lambda use, container: None)
        if flow is None:
            return
        keys = [(key, node) for key, node in flow.key_nodes if key in self.moved]
        if keys:
            key, node = keys[0]
            self.ctx.diagnose(
                node,
                f"{key} and the other {label} keywords of **{short(name.id, 16)} moved to {self.config}: pass "
                f"them there",
                f"{label} keywords in **{short(name.id, 16)} moved to {self.config}: pass them there",
            )

    def args_of(self, call: ast.Call) -> ast.AST | None:
        for kw in call.keywords:
            if kw.arg == "args":
                return kw.value
        if self.args_position is not None and len(call.args) > self.args_position:
            node = call.args[self.args_position]
            return None if isinstance(node, ast.Starred) else node
        return None

    def plan(self, kw: ast.keyword) -> Move | None:
        """The move of one keyword; None (after a diagnostic) when it cannot move."""
        key = kw.arg
        assert key is not None
        if key in self.always_gone:
            when, hints = self.always_gone[key]
            if not pure(kw.value):
                self.ctx.diagnose(kw, f"{key}= is gone ({when}) and its value is computed here: drop it by hand")
                return None
            return Move(kw, None, gone_todos(key, kw.value, self.ctx.analysis.segment(kw.value), when, hints))
        field = self.fields.get(key)
        if field is None:
            return Move(kw, key)
        plan = field.plan(Item(key, kw.value, kw, kw), {})
        if isinstance(plan, str):
            self.ctx.diagnose(kw, plan)
            return None
        if not plan:
            return Move(kw, key)
        change = plan[0][1]
        if change.new is None and isinstance(field, Gone):
            return Move(kw, None, field.todos(kw.value, self.ctx.analysis.segment(kw.value)))
        return Move(kw, change.new)

    # -- where they go
    def config_call(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        kind = self.ctx.kinds.kind_of(node.func)
        return (
            kind is not None
            and kind.what == "ref"
            and hf.root(kind.qname) == "trl"
            and (hf.last(kind.qname) == self.config)
        )

    def bound_config(self, call: ast.Call, node: ast.AST) -> ast.Call | None:
        """`config = SFTConfig(...)` bound once in the call's scope, read elsewhere only as `config.attr`."""
        a = self.ctx.analysis
        if not isinstance(node, ast.Name):
            return None
        found = a.reaching(node)
        if len(found) != 1:
            return None
        b: Binding = found[0]
        if b.kind not in ("assign", "annassign") or b.path or b.scope is not a.scope_of(call):
            return None
        if len(b.scope.bindings.get(node.id, ())) != 1 or not self.config_call(b.value):  # type: ignore[arg-type]
            return None
        for load in a.loads(b):
            parent = a.parent(load)
            if load is not node and not (isinstance(parent, ast.Attribute) and parent.value is load):
                return None
        return b.value  # type: ignore[return-value]

    def apply(self, call: ast.Call, args_node: ast.AST, moves: list[Move]) -> None:
        ctx = self.ctx
        kept = [m for m in moves if m.new is not None]
        target: ast.Call | None = None
        if self.config_call(args_node):
            target = args_node  # type: ignore[assignment]
        else:
            target = self.bound_config(call, args_node)
        if target is not None and any(k.arg is None for k in target.keywords):
            target = None  # `SFTConfig(**d)`: d may hold the keys; trl_config merges safely
        if target is not None:
            given = {k.arg for k in target.keywords}
            clash = [m for m in kept if m.new in given or m.kw.arg in given]
            for m in clash:
                ctx.diagnose(m.kw, f"{m.kw.arg}= is also given to {self.config}(...): keep one, in the config")
            if clash:
                return
        for m in moves:
            if m.new is None and m.todos:
                ctx.todo(m.kw, *m.todos)
        names = ", ".join(f"{m.kw.arg}=" for m in moves)
        drop_names = frozenset(m.kw.arg for m in moves)  # type: ignore[misc]
        renames = {m.kw.arg: m.new for m in kept}
        block = ctx.text.indent(ctx.anchor_statement(call).lineno)
        unit = ctx.text.indent_unit
        if target is args_node:
            self.inline(call, args_node, drop_names, renames, block, unit, names)
        elif target is not None:
            self.bound(call, target, kept, drop_names, names)
        elif kept:
            self.wrap(call, args_node, drop_names, renames, block, unit, names)
        else:
            ctx.edit(
                call, lambda c: c.with_changes(args=cstutil.without_keywords(c.args, drop_names)), f"{names} dropped"
            )

    def _position(self, call: ast.Call, args_node: ast.AST) -> tuple[int | None, bool]:
        for kw in call.keywords:
            if kw.value is args_node:
                return None, True
        return call.args.index(args_node), False  # type: ignore[arg-type]

    def inline(self, call, args_node, drop_names, renames, block, unit, names) -> None:
        index, by_keyword = self._position(call, args_node)
        config = self.config
        one_line = call.lineno == call.end_lineno
        col = self.ctx.text.char_col(args_node.lineno, args_node.col_offset)
        head = self.ctx.text.char_col(call.lineno, call.col_offset)
        suffix = len(self.ctx.text.line(call.end_lineno)) - self.ctx.text.char_col(call.end_lineno, call.end_col_offset)

        def fn(node: cst.Call) -> cst.Call:
            moved = [a for a in node.args if a.keyword is not None and a.keyword.value in drop_names]
            args = cstutil.without_keywords(node.args, drop_names)
            i = _arg_index(args, index, by_keyword)
            if i is None or not isinstance(args[i].value, cst.Call):
                return node
            value = append_args(args[i].value, moved, renames)
            args = list(args)
            args[i] = args[i].with_changes(value=value)
            new = node.with_changes(args=args)
            return fit_trainer(new, i, one_line, head, suffix, col, block, unit)

        self.ctx.edit(call, fn, f"{names} moved into {config}(...)", at=drop_first(call, drop_names))

    def bound(self, call, target: ast.Call, kept: list[Move], drop_names, names) -> None:
        ctx = self.ctx
        a = ctx.analysis
        extra = [(m.new, a.segment(m.kw.value)) for m in kept]
        ctx.edit(call, lambda c: c.with_changes(args=cstutil.without_keywords(c.args, drop_names)), f"{names} moved into "
                 f"{self.config}(...)", at=drop_first(call, drop_names))  # fmt: skip
        block = ctx.text.indent(ctx.anchor_statement(target).lineno)
        unit = ctx.text.indent_unit
        col = ctx.text.char_col(target.lineno, target.col_offset)
        suffix = len(ctx.text.line(target.end_lineno)) - ctx.text.char_col(target.end_lineno, target.end_col_offset)
        one_line = target.lineno == target.end_lineno

        def fn(node: cst.Call) -> cst.Call:
            new_args = [cstutil.kwarg(key, _expression(code)) for key, code in extra]
            new = node.with_changes(args=_extended(node.args, new_args))
            return fit(new, col, suffix, block, unit) if one_line else new

        ctx.edit(target, fn, f"{names} moved here from the trainer", counted=False)

    def wrap(self, call, args_node, drop_names, renames, block, unit, names) -> None:
        ctx = self.ctx
        if not self.names_free(call):
            return
        ctx.add_import(COMPAT)
        ctx.add_import("trl", self.config)
        index, by_keyword = self._position(call, args_node)
        one_line = call.lineno == call.end_lineno
        col = ctx.text.char_col(args_node.lineno, args_node.col_offset)
        head = ctx.text.char_col(call.lineno, call.col_offset)
        suffix = len(ctx.text.line(call.end_lineno)) - ctx.text.char_col(call.end_lineno, call.end_col_offset)
        config = self.config

        def fn(node: cst.Call) -> cst.Call:
            moved = [a for a in node.args if a.keyword is not None and a.keyword.value in drop_names]
            args = cstutil.without_keywords(node.args, drop_names)
            i = _arg_index(args, index, by_keyword)
            if i is None:
                return node
            inner = args[i].value
            wrapped = cst.Call(
                func=cstutil.attr(COMPAT, "trl_config"),
                args=[cst.Arg(cst.Name(config), comma=_COMMA), cst.Arg(inner)],
            )
            wrapped = append_args(wrapped, moved, renames)
            args = list(args)
            args[i] = args[i].with_changes(value=wrapped)
            return fit_trainer(node.with_changes(args=args), i, one_line, head, suffix, col, block, unit)

        ctx.edit(call, fn, f"{names} moved into compat.trl_config({config}, ...)", at=drop_first(call, drop_names))

    def names_free(self, node: ast.AST) -> bool:
        """`compat` and the config's name are free for our imports here (or already what we need)."""
        a = self.ctx.analysis
        scope = a.scope_of(node)
        for b in a.resolve(COMPAT, scope):
            if not (b.kind == "import" and isinstance(b.statement, ast.Import) and b.qname == COMPAT):
                self.ctx.diagnose(node, f"`{COMPAT}` names another object here: move the keywords by hand")
                return False
        for b in a.resolve(self.config, scope):
            if not (b.kind == "import" and b.qname == f"trl.{self.config}"):
                self.ctx.diagnose(node, f"`{self.config}` names another object here: move the keywords by hand")
                return False
        return True


def drop_first(call: ast.Call, names: frozenset) -> ast.AST:
    return next((k for k in call.keywords if k.arg in names), call)


# ---------------------------------------------------------------------------------------------- libcst helpers
_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _expression(code: str) -> cst.BaseExpression:
    expr = cst.parse_expression(f"({code})")
    return expr.with_changes(lpar=[], rpar=[]) if "\n" not in code else expr


def _arg_index(args: Sequence[cst.Arg], index: int | None, by_keyword: bool) -> int | None:
    if by_keyword:
        return next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "args"), None)
    positional = [i for i, a in enumerate(args) if a.keyword is None and not a.star]
    return positional[index] if index is not None and index < len(positional) else None


def append_args(call: cst.Call, moved: Sequence[cst.Arg], renames: Mapping[str, str]) -> cst.Call:
    """`call` with the `moved` keyword arguments appended (renamed, in their order), commas as `call` has them."""
    new_args = []
    for arg in moved:
        name = arg.keyword.value  # type: ignore[union-attr]
        if name in renames:
            new_args.append(cstutil.kwarg(renames[name], arg.value))
    return call.with_changes(args=_extended(call.args, new_args))


def _extended(args: Sequence[cst.Arg], new: Sequence[cst.Arg]) -> list[cst.Arg]:
    if not new:
        return list(args)
    combined = [*args, *new]
    inserted = frozenset(range(len(args), len(combined)))
    if not args:
        return cstutil.with_commas([a.with_changes(comma=_COMMA) for a in combined], combined, inserted)
    return cstutil.with_commas(list(combined), list(args), inserted)


def _newline(rel: str) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(
        first_line=cst.TrailingWhitespace(), empty_lines=[], indent=True, last_line=cst.SimpleWhitespace(rel)
    )


def _flat(call: cst.Call) -> cst.Call:
    args = [a.with_changes(comma=_COMMA, whitespace_after_arg=cst.SimpleWhitespace("")) for a in call.args]
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args, whitespace_before_args=cst.SimpleWhitespace(""))


def split(call: cst.Call, base_rel: str, unit: str, width: int) -> cst.Call:
    """Black's layout for a call too long for its line: the arguments together on one indented line when they fit
    in `width` columns there (`width` counts the line's block indentation), else one per line with a trailing comma.
    `base_rel`: the indentation of the call's line beyond the statement's block."""
    flat = _flat(call)
    body = ", ".join(cstutil.code(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for a in flat.args)
    inner = base_rel + unit
    if "\n" not in body and len(inner) + len(body) <= width:
        args = list(flat.args)
        args[-1] = args[-1].with_changes(whitespace_after_arg=_newline(base_rel))
        return flat.with_changes(args=args, whitespace_before_args=_newline(inner))
    args = [a.with_changes(comma=cst.Comma(whitespace_after=_newline(inner))) for a in flat.args]
    args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=_newline(base_rel)))
    return flat.with_changes(args=args, whitespace_before_args=_newline(inner))


def fit(call: cst.Call, col: int, suffix: int, block: str, unit: str) -> cst.Call:
    """A one-line call starting at column `col` (`suffix` characters follow it on its line): split when too long."""
    text = cstutil.code(call)
    if "\n" in text or col + len(text) + suffix <= cstutil.MAX_LINE:
        return call
    return split(call, "", unit, cstutil.MAX_LINE - len(block))


def fit_trainer(new: cst.Call, i: int, one_line: bool, head: int, suffix: int, col: int, block: str, unit: str):
    """The trainer call after a move, laid out as black would: a call that stays within the line length keeps its
    layout; else argument `i` (the config) is split where it starts its own line, and otherwise the trainer call
    gets one argument per line first. `head`/`col`: the columns of the trainer call and of the config."""
    width = cstutil.MAX_LINE - len(block)
    arg = new.args[i]
    value = arg.value
    arg_len = len(cstutil.code(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT))) + 1  # its comma
    if one_line:
        if head + len(cstutil.code(new)) + suffix <= cstutil.MAX_LINE:
            return new
    else:
        rel = _arg_line_indent(new, i)
        if rel is not None:  # the config starts its line
            if len(block) + len(rel) + arg_len <= cstutil.MAX_LINE or not isinstance(value, cst.Call):
                return new
            return _with_arg(new, i, split(value, rel, unit, width))
        if col + len(cstutil.code(value)) + 1 <= cstutil.MAX_LINE:
            return new
    args = [a.with_changes(comma=cst.Comma(whitespace_after=_newline(unit))) for a in new.args]
    args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=_newline("")),
                                     whitespace_after_arg=cst.SimpleWhitespace(""))  # fmt: skip
    new = new.with_changes(args=args, whitespace_before_args=_newline(unit))
    if len(block) + len(unit) + arg_len <= cstutil.MAX_LINE or not isinstance(value, cst.Call):
        return new
    return _with_arg(new, i, split(value, unit, unit, width))


def _with_arg(call: cst.Call, i: int, value: cst.BaseExpression) -> cst.Call:
    args = list(call.args)
    args[i] = args[i].with_changes(value=value)
    return call.with_changes(args=args)


def _arg_line_indent(call: cst.Call, i: int) -> str | None:
    """The indentation (beyond the block) of the line argument `i` starts, when it starts one."""
    ws = call.whitespace_before_args if i == 0 else call.args[i - 1].comma
    if i > 0:
        ws = ws.whitespace_after if isinstance(ws, cst.Comma) else None
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return ws.last_line.value
    return None


# ---------------------------------------------------------------------------------------------- the rule
SFT_TRAINERS = frozenset({"SFTTrainer"})
SFT_MOVED = (
    "max_seq_length", "dataset_text_field", "packing", "dataset_num_proc", "dataset_batch_size", "dataset_kwargs",
    "neftune_noise_alpha", "model_init_kwargs", "eval_packing", "num_of_sequences", "chars_per_token", "infinite",
)  # fmt: skip
SFT_FIELDS: tuple[Field, ...] = (
    renamed("max_seq_length", "max_length", MAX_LENGTH_GATE),
    Gone("num_of_sequences", KNOBS_GATE, "TRL 0.18", "packing fills max_length"),
    Gone("chars_per_token", KNOBS_GATE, "TRL 0.18", "packing fills max_length"),
    Gone("dataset_batch_size", KNOBS_GATE, "TRL 0.18", "datasets are mapped whole", "mapped whole"),
)
SFT_ALWAYS_GONE = {"infinite": ("TRL 0.13", ("max_steps/num_train_epochs set it", "max_steps sets it"))}
_LIST_LOOP = re.compile(r"\bfor\b[^\n]*\brange\(\s*len\(")


class TrlSftConfig(Rule):
    id = "trl-sft-config"
    summary = "SFTTrainer(max_seq_length=, packing=, ...) -> the SFTConfig passed as args; max_seq_length -> max_length"
    triggers = ("SFTTrainer", "SFTConfig")  # the classes first (cheap, selective), then the keywords
    trigger_regex = re.compile(r"\b(?:" + "|".join(SFT_MOVED) + r"|formatting_func)\b")
    gates = (CONFIGS_GATE,)
    item_gates = (MAX_LENGTH_GATE, KNOBS_GATE, FORMATTING_GATE)

    def check(self, ctx: FileContext) -> None:
        TrainerMoves(
            ctx, SFT_TRAINERS, "SFTConfig", SFT_MOVED, SFT_FIELDS, args_position=1, always_gone=SFT_ALWAYS_GONE
        ).run()
        TodoConfigFields(ctx, SFT_FIELDS, trl_class({"SFTConfig"})).run()
        if ctx.target_meets(FORMATTING_GATE):
            self.formatting_funcs(ctx)

    def formatting_funcs(self, ctx: FileContext) -> None:
        """`SFTTrainer(formatting_func=f)` where `f` (defined in this file) builds a list of texts in a loop over
        `range(len(example[...]))`: TRL >= 0.17 calls it per example and needs one string."""
        a = ctx.analysis
        for kw in a.keywords.get("formatting_func", ()):
            call = a.call_of_keyword(kw)
            if call is None or not isinstance(kw.value, ast.Name):
                continue
            kind = ctx.kinds.kind_of(call.func)
            if kind is None or kind.what != "ref" or not (hf.root(kind.qname) == "trl" and
                                                          hf.last(kind.qname) in SFT_TRAINERS):  # fmt: skip
                continue
            found = a.reaching(kw.value)
            if len(found) != 1 or found[0].kind != "def":
                continue
            fn = found[0].node
            if _returns_list_of_texts(a, fn):  # type: ignore[arg-type]
                ctx.diagnose(
                    kw.value,
                    f"{short(kw.value.id, 28)} returns a list: TRL >= 0.17 calls it per example; return one string",
                    "returns a list: TRL >= 0.17 calls it per example; return one string",
                )


def _returns_list_of_texts(a, fn: ast.FunctionDef) -> bool:
    if not _LIST_LOOP.search(a.segment(fn)):
        return False
    lists = {
        t.id
        for stmt in ast.walk(fn)
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.List) and not stmt.value.elts
        for t in stmt.targets
        if isinstance(t, ast.Name)
    }
    return any(
        isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Name) and stmt.value.id in lists
        for stmt in ast.walk(fn)
    )
