"""Shared machinery for rules that replace one imported function (a TRL or peft helper) by another call.

A `FunctionRule` knows the modules the old function was importable from; it finds every reference whose qualified
names ALL resolve to one of those (any import form: aliases, multi-name and parenthesised imports, function-local
imports, `import trl.models.utils as U`, fully qualified `trl.trainer.peft_module_casting_to_bf16`), rewrites calls
with `rewrite_call`, other references with `rewrite_reference`, and schedules the old imports for removal (libcst
removes them only when nothing uses them any more; emptied try/except and if/else fallbacks are collapsed).
A name that resolves to the old function *and* to something else (e.g. a fallback that assigns None) is left alone
with a TODO comment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import libcst as cst
from libcst.metadata import ScopeProvider

from codemods.base import Rule

COMPAT = "compat"
MAX_LINE = 120  # a one-line call pushed past this by a rewrite is split, one argument per line
_EMPTY = cst.Module(body=[])


def imports_module(package: str) -> re.Pattern[str]:
    """Pre-filter regex: the file has an import statement of `package` (any form, also indented or after `;`).
    A rule that resolves names through imports cannot apply to a file without one."""
    p = re.escape(package)
    return re.compile(
        rf"(?:^|;)[ \t]*(?:from[ \t]+{p}\b|import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*{p}\b)",
        re.MULTILINE,
    )


def dotted(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def compat_attr(name: str) -> cst.Attribute:
    return cst.Attribute(value=cst.Name(COMPAT), attr=cst.Name(name))


def bound_args(args: Sequence[cst.Arg], params: Sequence[str]) -> dict[str, cst.Arg] | None:
    """Map call arguments to parameter names; None when there is `*x`/`**x` or an unknown keyword."""
    out: dict[str, cst.Arg] = {}
    for i, arg in enumerate(args):
        if arg.star:
            return None
        if arg.keyword is None:
            if i >= len(params):
                return None
            out[params[i]] = arg
        else:
            if arg.keyword.value not in params or arg.keyword.value in out:
                return None
            out[arg.keyword.value] = arg
    return out


def kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(
        keyword=cst.Name(name),
        value=value,
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )


def as_keyword(arg: cst.Arg, name: str) -> cst.Arg:
    if arg.keyword is not None and arg.keyword.value == name:
        return arg
    return arg.with_changes(
        keyword=cst.Name(name),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )


def with_commas(
    args: list[cst.Arg], original: Sequence[cst.Arg], inserted: frozenset[int] = frozenset()
) -> list[cst.Arg]:
    """Re-punctuate a rebuilt argument list: keep the original comma style where we can, no trailing comma added.
    `inserted`: indexes (in `args`) of new arguments; comment lines that stood before the argument after an insertion
    point move down with that argument."""
    if not args:
        return args
    trailing = bool(original) and not isinstance(original[-1].comma, cst.MaybeSentinel)
    default_comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    sample = next((a.comma for a in original[:-1] if isinstance(a.comma, cst.Comma)), default_comma)
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


class FunctionRule(Rule):
    """Base for "old helper -> new call" rules. Subclasses set `old_modules`/`old_name` and implement
    `rewrite_call` (return the new expression, or None after calling `self.add_todo`)."""

    old_modules: ClassVar[tuple[str, ...]] = ()
    old_name: ClassVar[str] = ""
    origin: ClassVar[str] = "TRL's"  # for messages

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old = frozenset(f"{m}.{self.old_name}" for m in self.old_modules)
        self._star: bool | None = None
        self._in_call: set[int] = set()

    # -- imports: never visit their names; schedule the old ones for removal (done only if unused afterwards)
    def _module_prefix(self, name: str) -> bool:
        return any(m == name or m.startswith(name + ".") for m in self.old_modules)

    def _import_skipped(self, node: cst.CSTNode) -> bool:
        line = self.parent(node) if self.skip_lines else None
        return line is not None and self._is_skipped(line)

    def visit_Import(self, node: cst.Import) -> bool:
        if self._import_skipped(node):
            return False
        for alias in node.names:
            name = dotted(alias.name)
            if name and self._module_prefix(name):
                asname = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
                self.remove_unused_import(name, asname=asname)
                self.note_import_removal(node)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if node.relative or isinstance(node.names, cst.ImportStar) or self._import_skipped(node):
            return False
        module = dotted(node.module)
        if not module:
            return False
        for alias in node.names:
            name = alias.name.value if isinstance(alias.name, cst.Name) else None
            if not name:
                continue
            full = f"{module}.{name}"
            if full in self.old or self._module_prefix(full):
                asname = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
                self.remove_unused_import(module, name, asname)
                self.note_import_removal(node)
        return False

    # -- references
    def _star_imported(self, node: cst.CSTNode) -> bool:
        """`from trl.models.utils import *` then `prepare_peft_model(...)`: a load of the old name that nothing in
        the file binds (scope analysis does not see through star imports)."""
        if not isinstance(node, cst.Name) or node.value != self.old_name:
            return False
        if self._star is None:
            modules = "|".join(re.escape(m) for m in self.old_modules)
            self._star = (
                re.search(rf"^[ \t]*from[ \t]+(?:{modules})[ \t]+import[ \t]+\*", self.source, re.M) is not None
            )
        if not self._star:
            return False
        scope = self.get_metadata(ScopeProvider, node, None)
        if scope is None:
            return False
        return any(a.node is node and not a.referents for a in scope.accesses[node.value])

    def _kind(self, node: cst.CSTNode) -> str:
        names = self.qualified_names(node)
        if not names and self._star_imported(node):
            return "none" if self.in_fstring(node) else "old"
        if not names or not (names & self.old):
            return "none"
        if self.in_fstring(node):
            return "none"  # f-strings are never touched
        return "old" if names <= self.old else "ambiguous"

    def in_fstring(self, node: cst.CSTNode) -> bool:
        current = self.parent(node)
        while current is not None and not isinstance(current, cst.BaseStatement):
            if isinstance(current, (cst.FormattedString, cst.FormattedStringExpression)):
                return True
            current = self.parent(current)
        return False

    def visit_Call(self, node: cst.Call) -> None:
        if self._kind(node.func) != "none":
            self._in_call.add(id(node.func))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if id(original_node.func) not in self._in_call:
            return updated_node
        if self._kind(original_node.func) == "ambiguous":
            self.add_todo(
                original_node,
                f"`{dotted(original_node.func)}` may be {self.origin} `{self.old_name}` or another object here "
                "(it is also bound otherwise in this file); rewrite it by hand",
            )
            return updated_node
        new = self.rewrite_call(original_node, updated_node)
        if new is None:
            return updated_node
        self.record(original_node, f"{dotted(original_node.func)}(...)")
        if isinstance(new, cst.Call):
            new = self.fit(original_node, new)
        return new

    def fit(self, original: cst.Call, new: cst.Call) -> cst.Call:
        """A one-line call that the rewrite pushed past MAX_LINE characters gets one argument per line (with a
        trailing comma, black-style); anything else keeps its layout."""
        old_code = _EMPTY.code_for_node(original)
        if "\n" in old_code or not new.args:
            return new
        line_no = self.line_of(original)
        lines = self.source.splitlines()
        if not 0 < line_no <= len(lines) or old_code not in lines[line_no - 1]:
            return new
        line = lines[line_no - 1]
        new_len = len(line) - len(old_code) + len(_EMPTY.code_for_node(new))
        if new_len <= MAX_LINE or len(line) > MAX_LINE:
            return new
        unit = self.context.wrapper.module.default_indent if self.context.wrapper is not None else "    "

        def newline(last_line: str) -> cst.ParenthesizedWhitespace:
            return cst.ParenthesizedWhitespace(
                first_line=cst.TrailingWhitespace(),
                empty_lines=[],
                indent=True,
                last_line=cst.SimpleWhitespace(last_line),
            )

        args = [a.with_changes(comma=cst.Comma(whitespace_after=newline(unit))) for a in new.args[:-1]]
        args.append(new.args[-1].with_changes(comma=cst.Comma(whitespace_after=newline(""))))
        return new.with_changes(whitespace_before_args=newline(unit), args=args)

    def _leave_reference(self, original_node, updated_node):
        if id(original_node) in self._in_call or self._kind(original_node) != "old":
            return updated_node
        if isinstance(self.parent(original_node), cst.Del):
            return updated_node  # `del name` unbinds the old import: nothing to rewrite
        new = self.rewrite_reference(original_node, updated_node)
        if new is None:
            return updated_node
        self.record(original_node, f"reference to {dotted(original_node)}")
        return new

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        return self._leave_reference(original_node, updated_node)

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        return self._leave_reference(original_node, updated_node)

    # -- helpers
    def compat_callee(self, original: cst.CSTNode, name: str) -> cst.Attribute | None:
        """`compat.<name>` (scheduling `import compat`), or None with a TODO when `compat` means something else
        in this scope."""
        scope = self.get_metadata(ScopeProvider, original, None)
        if scope is not None:
            for assignment in scope[COMPAT]:
                node = getattr(assignment, "node", None)
                if not (
                    isinstance(node, cst.Import)
                    and any(dotted(a.name) == COMPAT and a.asname is None for a in node.names)
                ):
                    self.add_todo(original, f"`{COMPAT}` is another object here; call compat.{name} by hand")
                    return None
        self.add_needed_import(COMPAT)
        return compat_attr(name)

    def mentions(self, text: str) -> bool:
        """Cheap whole-file text check (e.g. "does this file call get_peft_model anywhere?")."""
        return text in self.source

    # -- to implement
    def rewrite_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        raise NotImplementedError

    def rewrite_reference(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.BaseExpression | None:
        """A use that is not a call (passed as a value, aliased). Default: leave it, with a TODO."""
        self.add_todo(
            original,
            f"`{dotted(original)}` is used as a value, not called; replace it by hand",
        )
        return None
