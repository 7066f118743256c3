"""Small libcst builders for the rules' edit functions (which receive and return libcst nodes)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import libcst as cst

Item = TypeVar("Item", cst.Arg, cst.ImportAlias)

MAX_LINE = 120  # a one-line call pushed past this by a rewrite is split, one argument per line
_EMPTY = cst.Module(body=[])
NO_SPACE = cst.AssignEqual(
    whitespace_before=cst.SimpleWhitespace(""),
    whitespace_after=cst.SimpleWhitespace(""),
)


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def dotted(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def attr(head: str, name: str) -> cst.Attribute:
    return cst.Attribute(value=cst.Name(head), attr=cst.Name(name))


def kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(keyword=cst.Name(name), value=value, equal=NO_SPACE)


def as_keyword(arg: cst.Arg, name: str) -> cst.Arg:
    if arg.keyword is not None and arg.keyword.value == name:
        return arg
    return arg.with_changes(keyword=cst.Name(name), equal=NO_SPACE)


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def without(items: Sequence[Item], drop: Callable[[int, Item], bool]) -> list[Item]:
    """`items` (call arguments, imported names) without those `drop(index, item)` selects. The item before a dropped
    run takes the comma of the run's last item, so a line break after the run stays where it was, unless its own
    comma already ends a line (its comment stays with it). When the last run goes, the new last item takes the
    trailing comma (or none) and, for an argument, the whitespace before `)`, so `f(\n    a, b=1\n)` keeps its
    closing line."""
    out: list[Item] = []
    run_last: Item | None = None
    for i, item in enumerate(items):
        if drop(i, item):
            run_last = item
            continue
        if run_last is not None and out and not _ends_line(out[-1].comma):
            out[-1] = out[-1].with_changes(comma=run_last.comma)
        run_last = None
        out.append(item)
    if run_last is not None and out:
        if isinstance(run_last, cst.Arg):
            out[-1] = out[-1].with_changes(comma=run_last.comma, whitespace_after_arg=run_last.whitespace_after_arg)
        else:
            out[-1] = out[-1].with_changes(comma=run_last.comma)
    return out


def _ends_line(comma: cst.Comma | cst.MaybeSentinel) -> bool:
    return isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace)


def without_args(args: Sequence[cst.Arg], drop: Collection[int]) -> list[cst.Arg]:
    """`args` without the items at the indexes `drop` (see `without`)."""
    return without(args, lambda i, _: i in drop)


def without_keywords(args: Sequence[cst.Arg], names: Collection[str]) -> list[cst.Arg]:
    """`args` without the keyword arguments `names` (see `without`)."""
    return without(args, lambda _, arg: arg.keyword is not None and arg.keyword.value in names)


def with_commas(
    args: list[cst.Arg],
    original: Sequence[cst.Arg],
    inserted: frozenset[int] = frozenset(),
) -> list[cst.Arg]:
    """Re-punctuate a rebuilt argument list: keep the original comma style where we can, no trailing comma added.
    `inserted`: indexes (in `args`) of new arguments; comment lines that stood before the argument after an insertion
    point move down with that argument."""
    if not args:
        return args
    trailing = bool(original) and not isinstance(original[-1].comma, cst.MaybeSentinel)
    default_comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    sample = next(
        (a.comma for a in original[:-1] if isinstance(a.comma, cst.Comma)),
        default_comma,
    )
    if isinstance(sample, cst.Comma) and isinstance(sample.whitespace_after, cst.ParenthesizedWhitespace):
        # the layout of a multi-line call, without the comment that belongs to its first argument
        sample = sample.with_changes(
            whitespace_after=sample.whitespace_after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
        )
    out = []
    carry: Sequence[cst.EmptyLine] = ()
    for i, arg in enumerate(args):
        last = i == len(args) - 1
        if last:
            comma = original[-1].comma if trailing else cst.MaybeSentinel.DEFAULT
        else:
            comma = arg.comma if isinstance(arg.comma, cst.Comma) and arg is not original[-1] else sample
        ws = comma.whitespace_after if isinstance(comma, cst.Comma) else None
        if isinstance(ws, cst.ParenthesizedWhitespace):
            if i not in inserted and i + 1 in inserted and ws.empty_lines:
                carry = ws.empty_lines
                comma = comma.with_changes(whitespace_after=ws.with_changes(empty_lines=[]))
            elif carry and i in inserted and (i + 1 not in inserted):
                comma = comma.with_changes(whitespace_after=ws.with_changes(empty_lines=carry))
                carry = ()
        out.append(arg.with_changes(comma=comma))
    return out


def one_per_line(new: cst.Call, indent: str) -> cst.Call:
    """`new` with one argument per line (black style, trailing comma)."""

    def newline(last_line: str) -> cst.ParenthesizedWhitespace:
        return cst.ParenthesizedWhitespace(
            first_line=cst.TrailingWhitespace(),
            empty_lines=[],
            indent=True,
            last_line=cst.SimpleWhitespace(last_line),
        )

    args = [a.with_changes(comma=cst.Comma(whitespace_after=newline(indent))) for a in new.args[:-1]]
    args.append(new.args[-1].with_changes(comma=cst.Comma(whitespace_after=newline(""))))
    return new.with_changes(whitespace_before_args=newline(indent), args=args)


def one_param_per_line(fn: cst.FunctionDef, indent: str) -> cst.FunctionDef:
    """`fn` with one parameter per line (black style, trailing comma), for a signature a rewrite made too long."""

    def newline(last_line: str) -> cst.ParenthesizedWhitespace:
        return cst.ParenthesizedWhitespace(
            first_line=cst.TrailingWhitespace(), empty_lines=[], indent=True, last_line=cst.SimpleWhitespace(last_line)
        )

    p = fn.params
    groups: dict[str, list] = {
        "posonly_params": list(p.posonly_params),
        "params": list(p.params),
        "kwonly_params": list(p.kwonly_params),
    }
    order: list[tuple[str, int]] = [("posonly_params", i) for i in range(len(groups["posonly_params"]))]
    if isinstance(p.posonly_ind, cst.ParamSlash):
        order.append(("posonly_ind", 0))
    order += [("params", i) for i in range(len(groups["params"]))]
    if isinstance(p.star_arg, (cst.Param, cst.ParamStar)):
        order.append(("star_arg", 0))
    order += [("kwonly_params", i) for i in range(len(groups["kwonly_params"]))]
    if isinstance(p.star_kwarg, cst.Param):
        order.append(("star_kwarg", 0))
    singles = {"posonly_ind": p.posonly_ind, "star_arg": p.star_arg, "star_kwarg": p.star_kwarg}
    for n, (name, i) in enumerate(order):
        last = n == len(order) - 1
        comma = cst.Comma(whitespace_after=newline("" if last else indent))
        node = groups[name][i] if name in groups else singles[name]
        changes = {"comma": comma}
        if isinstance(node, cst.Param):
            changes["whitespace_after_param"] = cst.SimpleWhitespace("")
        if last and isinstance(node, cst.ParamStar):
            return fn  # a bare `*` cannot end a parameter list
        node = node.with_changes(**changes)
        if name in groups:
            groups[name][i] = node
        else:
            singles[name] = node
    params = p.with_changes(**groups, **singles)
    return fn.with_changes(params=params, whitespace_before_params=newline(indent))


def fit(line: str, old_code: str, new: cst.Call, indent: str = "    ") -> cst.Call:
    """A one-line call that a rewrite pushed past MAX_LINE characters gets one argument per line; anything else
    keeps its layout. `line`: the original line holding the call; `old_code`: the call's original text."""
    if "\n" in old_code or not new.args or old_code not in line:
        return new
    new_len = len(line) - len(old_code) + len(code(new))
    if new_len <= MAX_LINE or len(line) > MAX_LINE:
        return new
    return one_per_line(new, indent)
