"""The edit plan of one file and its rendering: analysis on Python's ast, code written by libcst.

Rules never touch the text. They ask for edits against the *original* ast:

- `NodeEdit`: `fn(cst_node) -> cst_node` applied to the libcst node that has the same position as an ast node;
- `Comment`: a `# TODO(compat): ...` line above a statement;
- `Insert`: code before / after a statement (indented like it);
- `Removal`: a statement to delete (an import that became unused); emptied try/except and if/else import
  fallbacks are collapsed.

Rendering parses with libcst only the *statements* that hold node edits (each outermost such statement once, as a
fragment of its own: the text from its first character to its last; the lines after the first keep their
indentation, which Python accepts), applies every edit inside it in one transformer pass, and splices the rendered
fragment back. Everything outside the edited statements stays byte-identical, and the cost follows the size of
what changes, not of the file. Comments and inserts outside those statements are plain line insertions.

Several edits on one node compose in the order they were planned (rules run in registry order; an edit's `fn` gets
the node with its children's edits and the earlier edits already applied, so it must find things by content, not by
index). Two *exclusive* edits (a rule that replaces the whole node) on the same node conflict: the first planned
wins, and the engine runs once more on the output for the other (see codemods.engine).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

__all__ = [
    "Comment",
    "EditPlan",
    "Insert",
    "NodeEdit",
    "Removal",
    "RenderError",
    "render",
]

CstFn = Callable[[cst.CSTNode], "cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel"]

_CST_TYPES: dict[type, tuple[type, ...]] = {
    ast.Call: (cst.Call,),
    ast.keyword: (cst.Arg,),
    ast.Attribute: (cst.Attribute,),
    ast.Name: (cst.Name,),
    ast.Constant: (
        cst.SimpleString,
        cst.ConcatenatedString,
        cst.Integer,
        cst.Float,
        cst.Imaginary,
        cst.Name,
    ),
    ast.JoinedStr: (cst.FormattedString,),
    ast.Dict: (cst.Dict,),
    ast.List: (cst.List,),
    ast.Subscript: (cst.Subscript,),
    ast.IfExp: (cst.IfExp,),
    ast.BoolOp: (cst.BooleanOperation,),
    ast.Compare: (cst.Comparison,),
    ast.UnaryOp: (cst.UnaryOperation,),
    ast.BinOp: (cst.BinaryOperation,),
    ast.Lambda: (cst.Lambda,),
    ast.FunctionDef: (cst.FunctionDef,),
    ast.AsyncFunctionDef: (cst.FunctionDef,),
    ast.ClassDef: (cst.ClassDef,),
    ast.Import: (cst.Import,),
    ast.ImportFrom: (cst.ImportFrom,),
    ast.alias: (cst.ImportAlias,),
    ast.arg: (cst.Param,),
    ast.Assign: (cst.Assign,),
    ast.AnnAssign: (cst.AnnAssign,),
    ast.AugAssign: (cst.AugAssign,),
    ast.Expr: (cst.Expr,),
    ast.Return: (cst.Return,),
    ast.If: (cst.If,),
    ast.For: (cst.For,),
    ast.While: (cst.While,),
    ast.Try: (cst.Try,),
    ast.With: (cst.With,),
}
_SMALL_STATEMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Return, ast.Import, ast.ImportFrom,
                     ast.Pass, ast.Raise, ast.Assert, ast.Delete, ast.Global, ast.Nonlocal, ast.Break, ast.Continue)  # fmt: skip
_NEWLINE = re.compile(r"\r\n|\r|\n")


class RenderError(Exception):
    """An edit could not be rendered (its fragment did not parse, or its target was not found)."""


@dataclass
class NodeEdit:
    rule: str
    target: ast.AST
    fn: CstFn
    message: str
    exclusive: bool = False
    drops: tuple[ast.AST, ...] = ()  # ast nodes this edit removes from the code (for unused-import detection)
    cst_type: type | None = None
    collapse: bool = False  # an import edit that may make a try/except or if/else fallback's branches identical
    header: bool = False  # the edit (of a def node) changes only its header (decorators, signature): only that renders
    seq: int = 0


@dataclass
class Comment:
    rule: str
    statement: ast.stmt  # the anchor: the statement the comment goes above
    text: str  # the whole comment, "# TODO(compat): ..."
    seq: int = 0


@dataclass
class Insert:
    rule: str
    statement: ast.stmt
    code: str  # unindented; may hold several lines
    after: bool
    above_comments: bool = False  # before: above the comment lines directly over the statement
    seq: int = 0


@dataclass
class Removal:
    statement: ast.stmt
    alias: ast.alias | None = None  # remove only this name of a multi-name import
    seq: int = 0


@dataclass
class EditPlan:
    edits: list[NodeEdit] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    inserts: list[Insert] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    _seq: int = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def add_edit(self, edit: NodeEdit) -> None:
        edit.seq = self._next()
        self.edits.append(edit)

    def add_comment(self, comment: Comment) -> None:
        comment.seq = self._next()
        self.comments.append(comment)

    def add_insert(self, insert: Insert) -> None:
        insert.seq = self._next()
        self.inserts.append(insert)

    def add_removal(self, removal: Removal) -> None:
        removal.seq = self._next()
        self.removals.append(removal)

    def __bool__(self) -> bool:
        return bool(self.edits or self.comments or self.inserts or self.removals)


# ---------------------------------------------------------------------------------------------- text geometry
class Text:
    """Offsets of a source: ast positions (line, UTF-8 byte column) -> str offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.starts = [0]
        for m in _NEWLINE.finditer(source):
            self.starts.append(m.end())
        self.newline = "\r\n" if "\r\n" in source else ("\r" if "\r" in source and "\n" not in source else "\n")

    def line(self, lineno: int) -> str:
        """Line `lineno` (1-based) without its newline."""
        start = self.starts[lineno - 1]
        end = self.starts[lineno] if lineno < len(self.starts) else len(self.source)
        return self.source[start:end].rstrip("\r\n")

    def char_col(self, lineno: int, byte_col: int) -> int:
        text = self.line(lineno)
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))

    def offset(self, lineno: int, byte_col: int) -> int:
        return self.starts[lineno - 1] + self.char_col(lineno, byte_col)

    def line_start(self, lineno: int) -> int:
        return self.starts[lineno - 1]

    def next_line_start(self, lineno: int) -> int:
        return self.starts[lineno] if lineno < len(self.starts) else len(self.source)

    @property
    def indent_unit(self) -> str:
        """The file's indentation step (from its first indented line), "    " when it has none."""
        previous = ""
        for lineno in range(1, len(self.starts) + 1):
            line = self.line(lineno)
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            if len(indent) > len(previous) and indent.startswith(previous):
                return indent[len(previous) :]
            previous = indent
        return "    "

    def indent(self, lineno: int) -> str:
        text = self.line(lineno)
        return text[: len(text) - len(text.lstrip(" \t\f"))]


def first_line(stmt: ast.AST) -> int:
    """The first line of a statement, its decorators included."""
    decorators = getattr(stmt, "decorator_list", None)
    if decorators:
        return min(stmt.lineno, *(d.lineno for d in decorators))
    return stmt.lineno


def header_lines(stmt: ast.stmt) -> range:
    """The lines of a statement that `# compat: skip` applies to: every line of a simple statement; the header
    (decorators to the line before the body) of a compound one."""
    start = first_line(stmt)
    body = getattr(stmt, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
        end = max(stmt.lineno, body[0].lineno - 1)
        return range(start, end + 1)
    return range(start, (getattr(stmt, "end_lineno", None) or stmt.lineno) + 1)


def starts_line(stmt: ast.stmt, text: Text) -> bool:
    line = text.line(first_line(stmt))
    return text.char_col(first_line(stmt), _start_col(stmt)) == len(line) - len(line.lstrip(" \t\f"))


def _start_col(stmt: ast.AST) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    if decorators:
        first = min(decorators, key=lambda d: (d.lineno, d.col_offset))
        return max(first.col_offset - 1, 0)
    return stmt.col_offset


# ---------------------------------------------------------------------------------------------- rendering
@dataclass
class _Fragment:
    root: ast.stmt
    header: bool = False  # only the def's header lines (see _header_end)
    edits: list[NodeEdit] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    inserts: list[Insert] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)


def render(source: str, plan: EditPlan, parents: Callable[[ast.AST], ast.AST | None]) -> str:
    """Apply `plan` to `source`. `parents(node)` is the ast parent (FileAnalysis.parent)."""
    text = Text(source)

    def statement_of(node: ast.AST) -> ast.stmt:
        current: ast.AST | None = node
        while current is not None and not isinstance(current, ast.stmt):
            current = parents(current)
        if current is None:
            raise RenderError(f"no statement holds {type(node).__name__} at line {getattr(node, 'lineno', '?')}")
        return current

    def ancestors(node: ast.AST):
        current = parents(node)
        while current is not None:
            yield current
            current = parents(current)

    def host_of(node: ast.AST) -> ast.stmt:
        """The statement holding `node` that can be rendered on its own: an `elif` is rendered with its `if`."""
        stmt = statement_of(node)
        while _is_elif(stmt, parents(stmt), text):
            stmt = parents(stmt)  # type: ignore[assignment]
        return stmt

    # 1. roots: the statements holding node edits, and the compound statements whose block a removal empties
    hosts: dict[int, ast.stmt] = {}
    header_edits: list[NodeEdit] = []
    for edit in plan.edits:
        stmt = host_of(edit.target)
        if edit.collapse:
            stmt = _removal_root(stmt, parents)
        elif (edit.header and _header_end(stmt, text) is not None) or _in_header(stmt, edit.target, text):
            header_edits.append(edit)  # only the header changes (a signature, an `if` test): the body is not parsed
            continue
        hosts[id(stmt)] = stmt
    for removal in plan.removals:
        if removal.alias is not None or _needs_fragment(removal, plan, parents, text):
            root = _removal_root(removal.statement, parents)
            hosts[id(root)] = root
    # nested roots merge into their outermost root
    roots: dict[int, _Fragment] = {}
    owner: dict[int, _Fragment] = {}
    for stmt in sorted(hosts.values(), key=lambda s: (first_line(s), s.col_offset)):
        outer = next((roots[id(a)] for a in ancestors(stmt) if id(a) in roots), None)
        if outer is None:
            roots[id(stmt)] = owner[id(stmt)] = _Fragment(stmt)
        else:
            owner[id(stmt)] = outer

    def fragment_of(node: ast.AST) -> _Fragment | None:
        """The fragment whose root is `node` or an ancestor of it."""
        if id(node) in roots:
            return roots[id(node)]
        for a in ancestors(node):
            if id(a) in roots:
                return roots[id(a)]
        return None

    headers: dict[int, _Fragment] = {}
    for edit in plan.edits:
        stmt = host_of(edit.target)
        frag = fragment_of(stmt)
        if frag is None:  # a header edit outside every full fragment: a header fragment of its own
            assert edit in header_edits
            frag = headers.setdefault(id(stmt), _Fragment(stmt, header=True))
        frag.edits.append(edit)
    pieces: list[tuple[int, int, int, str]] = []  # (start, end, order, replacement): text edits, applied at the end
    for comment in plan.comments:
        frag = fragment_of(comment.statement)
        if frag is not None and frag.root is not comment.statement:
            frag.comments.append(comment)
        else:
            if not has_comment_above(text, comment.statement, comment.text):
                line = first_line(comment.statement)
                indent = text.indent(line)
                pieces.append(
                    (
                        text.line_start(line),
                        text.line_start(line),
                        comment.seq,
                        indent + comment.text + text.newline,
                    )
                )
    for insert in plan.inserts:
        frag = fragment_of(insert.statement)
        if frag is not None and frag.root is not insert.statement:
            frag.inserts.append(insert)
        else:
            stmt = insert.statement
            line = first_line(stmt)
            indent = text.indent(line)
            code = "".join(indent + ln + text.newline if ln else text.newline for ln in insert.code.splitlines())
            if insert.after:
                end_line = stmt.end_lineno or stmt.lineno
                at = text.next_line_start(end_line)
                if at == len(source) and not source.endswith(("\n", "\r")):
                    code = text.newline + code
                    if code.endswith(text.newline):
                        code = code[: -len(text.newline)]
                pieces.append((at, at, insert.seq, code))
            else:
                # above the comment lines that belong to the statement (no blank line between them)
                while insert.above_comments and line > 1 and text.line(line - 1).lstrip().startswith("#"):
                    line -= 1
                at = text.line_start(line)
                pieces.append((at, at, insert.seq, code))
    for removal in plan.removals:
        frag = fragment_of(removal.statement)
        if frag is not None:
            frag.removals.append(removal)
        else:
            stmt = removal.statement
            start = text.line_start(first_line(stmt))
            end = text.next_line_start(stmt.end_lineno or stmt.lineno)
            start, end = _with_blank_lines(text, stmt, parents, start, end)
            pieces.append((start, end, removal.seq, ""))

    for frag in [*roots.values(), *headers.values()]:
        start, end, code = _render_fragment(text, frag, parents)
        if not code:  # the whole statement went (a collapsed import fallback)
            start, end = _with_blank_lines(text, frag.root, parents, start, end)
        pieces.append((start, end, 10**9, code))

    # 2. splice, last first; insertions at an offset go before a replacement that starts there
    pieces.sort(key=lambda p: (p[0], p[1] != p[0], p[2]))
    out = []
    cursor = 0
    for start, end, _order, replacement in pieces:
        if start < cursor:
            raise RenderError("overlapping edits")
        out.append(source[cursor:start])
        out.append(replacement)
        cursor = end
    out.append(source[cursor:])
    return "".join(out)


def _with_blank_lines(text: Text, stmt: ast.stmt, parents, start: int, end: int) -> tuple[int, int]:
    """A statement removed whole takes its blank lines along, as libcst's removals do: the ones above it, or, for the
    first statement of an indented block, the ones below it (a block should not start with an empty line)."""
    parent = parents(stmt)
    block: list | None = None
    for name in ("body", "orelse", "finalbody"):
        candidate = getattr(parent, name, None)
        if isinstance(candidate, list) and stmt in candidate:
            block = candidate
    if block is None:
        return start, end
    if block[0] is not stmt:
        line = first_line(stmt) - 1
        while line >= 1 and not text.line(line).strip():
            start = text.line_start(line)
            line -= 1
    elif not isinstance(parent, ast.Module) and len(block) > 1:
        line = (stmt.end_lineno or stmt.lineno) + 1
        while line < first_line(block[1]) and not text.line(line).strip():
            end = text.next_line_start(line)
            line += 1
    return start, end


def has_comment_above(text: Text, stmt: ast.stmt, comment: str) -> bool:
    """`comment` is one of the comment lines right above the statement."""
    line = first_line(stmt) - 1
    while line >= 1:
        stripped = text.line(line).strip()
        if not stripped.startswith("#"):
            return False
        if stripped == comment:
            return True
        line -= 1
    return False


def _needs_fragment(removal: Removal, plan: EditPlan, parents, text: Text) -> bool:
    """A whole-statement removal is a line deletion, unless it shares a line with another statement or it empties
    its block (then the enclosing try/if is rebuilt)."""
    stmt = removal.statement
    parent = parents(stmt)
    removed = {id(r.statement) for r in plan.removals if r.alias is None}
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and stmt in block:
            return all(id(s) in removed for s in block)
    if isinstance(parent, ast.ExceptHandler):
        return all(id(s) in removed for s in parent.body)
    return False


def _removal_root(stmt: ast.stmt, parents) -> ast.stmt:
    """The outermost try/if chain around `stmt` (import fallbacks), else the statement itself."""
    root = stmt
    current = parents(stmt)
    while current is not None:
        if isinstance(current, ast.ExceptHandler):
            current = parents(current)
            continue
        if isinstance(current, (ast.Try, ast.If)) or type(current).__name__ == "TryStar":
            root = current
            current = parents(current)
            continue
        break
    return root


_HEADER_STATEMENTS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
)  # fmt: skip  (not `try`: `try:` alone is no statement)


def _header_end(stmt: ast.stmt, text: Text) -> int | None:
    """For a compound statement whose body starts on a line of its own: the line where that body starts (its header,
    decorators included, is everything above); else None (the whole statement is rendered)."""
    if not isinstance(stmt, _HEADER_STATEMENTS) or not starts_line(stmt, text):
        return None
    body_line = first_line(stmt.body[0])
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = stmt.args
        parts = [*stmt.decorator_list, *args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg,
                 *args.defaults, *args.kw_defaults, stmt.returns]  # fmt: skip
    elif isinstance(stmt, ast.ClassDef):
        parts = [*stmt.decorator_list, *stmt.bases, *stmt.keywords]
    elif isinstance(stmt, (ast.If, ast.While)):
        parts = [stmt.test]
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        parts = [stmt.target, stmt.iter]
    else:
        parts = [item for w in stmt.items for item in (w.context_expr, w.optional_vars)]  # type: ignore[attr-defined]
    last = max([stmt.lineno, *((p.end_lineno or p.lineno) for p in parts if p is not None)])
    return body_line if body_line > last and starts_line(stmt.body[0], text) else None


def _is_elif(stmt: ast.stmt, parent: ast.AST | None, text: Text) -> bool:
    return (
        isinstance(stmt, ast.If)
        and isinstance(parent, ast.If)
        and parent.orelse == [stmt]
        and text.line(stmt.lineno)[text.char_col(stmt.lineno, stmt.col_offset) :].startswith("elif")
    )


def _in_header(stmt: ast.stmt, node: ast.AST, text: Text) -> bool:
    """`node` (not the statement itself) lies in the header of compound statement `stmt`, above its body."""
    if node is stmt:
        return False
    end = _header_end(stmt, text)
    return end is not None and (getattr(node, "end_lineno", None) or end) < end


def _render_fragment(text: Text, frag: _Fragment, parents) -> tuple[int, int, str]:
    root = frag.root
    line0 = first_line(root)
    end_line = root.end_lineno or root.lineno
    end = text.offset(end_line, root.end_col_offset or 0)
    tail = ""
    if frag.header:
        # the header's lines and a `pass` body in place of the real one, which stays as it is
        body_line = _header_end(root, text)
        assert body_line is not None
        end = text.line_start(body_line)
        tail = text.indent(body_line) + "pass" + text.newline
    if starts_line(root, text):
        # The statement's whole lines, inside `if 1:` when indented: libcst then knows the block's indentation
        # (for the lines it adds) and the positions are the file's own columns.
        indent = text.indent(line0)
        start = text.line_start(line0)
        prefix = ("if 1:" + text.newline) if indent else ""
        col0 = 0
    else:  # `x = 1; y = f()` or `if c: y = f()`: from the statement's first character
        prefix = ""
        col0 = text.char_col(line0, _start_col(root))
        start = text.line_start(line0) + col0
    snippet = prefix + text.source[start:end] + tail
    shift = 1 if prefix else 0
    try:
        module = cst.parse_module(snippet)
    except cst.ParserSyntaxError as exc:
        raise RenderError(f"fragment at line {line0} does not parse with libcst: {str(exc).splitlines()[0]}") from None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    by_span: dict[tuple, list[cst.CSTNode]] = {}
    parent_of: dict[int, cst.CSTNode] = {}
    for node, rng in positions.items():
        by_span.setdefault((rng.start.line, rng.start.column, rng.end.line, rng.end.column), []).append(node)
        if isinstance(node, cst.Param):
            by_span.setdefault(("param", rng.start.line, rng.start.column), []).append(node)
        elif frag.header and isinstance(node, cst.FunctionDef):
            by_span.setdefault(("def", rng.start.line, rng.start.column), []).append(node)

    def local(lineno: int, byte_col: int) -> tuple[int, int]:
        col = text.char_col(lineno, byte_col)
        if lineno == line0:
            col -= col0
        return lineno - line0 + 1 + shift, col

    def find(node: ast.AST, want: tuple[type, ...] | None = None) -> cst.CSTNode:
        types = want or _CST_TYPES.get(type(node))
        if types is None:
            raise RenderError(f"no libcst counterpart for {type(node).__name__}")
        if isinstance(node, ast.arg):
            key: tuple = ("param", *local(node.lineno, node.col_offset))
        else:
            s = local(
                node.lineno,
                _start_col(node) if isinstance(node, ast.stmt) else node.col_offset,
            )
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                s = local(node.lineno, node.col_offset)
                if frag.header and node is root:
                    key = ("def", *s)
                    for candidate in by_span.get(key, ()):
                        return candidate
                    raise RenderError(f"the def at line {node.lineno} not found in its header fragment")
            e = local(node.end_lineno, node.end_col_offset)  # type: ignore[arg-type]
            key = (*s, *e)
        for candidate in by_span.get(key, ()):
            if isinstance(candidate, types):
                return candidate
        raise RenderError(f"{type(node).__name__} at line {node.lineno} not found in its libcst fragment")

    def statement_node(stmt: ast.stmt) -> cst.CSTNode:
        """The libcst statement for an ast statement (a simple statement's SimpleStatementLine)."""
        if isinstance(stmt, _SMALL_STATEMENTS):
            small = find(stmt, _small_types(stmt))
            if not parent_of:
                _parents(module, parent_of)
            line = parent_of.get(id(small))
            if not isinstance(line, cst.SimpleStatementLine):
                raise RenderError(f"statement at line {stmt.lineno} has no line of its own")
            return line
        return find(stmt)

    ops: dict[int, list] = {}
    for e in sorted(frag.edits, key=lambda e: e.seq):
        target = find(e.target, (e.cst_type,) if e.cst_type else None)
        ops.setdefault(id(target), []).append(("edit", e))
    for c in sorted(frag.comments, key=lambda c: c.seq):
        ops.setdefault(id(statement_node(c.statement)), []).append(("comment", c))
    for i in sorted(frag.inserts, key=lambda i: i.seq):
        ops.setdefault(id(statement_node(i.statement)), []).append(("insert", i))
    removed_any = False
    for r in sorted(frag.removals, key=lambda r: r.seq):
        node = statement_node(r.statement)
        if r.alias is not None:
            alias = find(r.alias)
            ops.setdefault(id(node), []).append(("remove_alias", alias))
        else:
            ops.setdefault(id(node), []).append(("remove", None))
            removed_any = True

    new_module = module.visit(_Apply(ops, module.default_indent))
    if removed_any or any(e.collapse for e in frag.edits):
        new_module = new_module.visit(CollapseEmptyFallbacks())
    code = new_module.code
    if prefix:
        if not code.startswith(prefix):
            raise RenderError(f"the statement at line {line0} was removed whole; cannot render it in place")
        code = code[len(prefix) :]
    if tail:
        if not code.endswith(tail):
            raise RenderError(f"the header of the def at line {line0} did not render in place")
        code = code[: -len(tail)]
    if not code.strip() and start == text.line_start(line0):
        end = text.next_line_start(end_line)  # removed whole: its line goes too
        code = ""
    return start, end, code


def _small_types(stmt: ast.stmt) -> tuple[type, ...]:
    name = type(stmt).__name__
    found = getattr(cst, name, None)
    return (found,) if found is not None else (cst.BaseSmallStatement,)


def _parents(module: cst.Module, out: dict[int, cst.CSTNode]) -> None:
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        for child in node.children:
            out[id(child)] = node
            stack.append(child)


class _Apply(cst.CSTTransformer):
    def __init__(self, ops: dict[int, list], indent: str) -> None:
        super().__init__()
        self.ops = ops
        self.indent = indent

    def on_leave(self, original_node, updated_node):  # type: ignore[override]
        todo = self.ops.get(id(original_node))
        if not todo:
            return updated_node
        result = updated_node
        comments: list[str] = []
        before: list[str] = []
        after: list[str] = []
        remove = False
        for kind, op in todo:
            if kind == "edit":
                if isinstance(result, cst.CSTNode):
                    result = op.fn(result)
            elif kind == "comment":
                comments.append(op.text)
            elif kind == "insert":
                (after if op.after else before).append(op.code)
            elif kind == "remove_alias":
                result = _without_alias(result, op)
            elif kind == "remove":
                remove = True
        if remove:
            return cst.RemoveFromParent()
        if comments and isinstance(result, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            existing = {ln.comment.value.strip() for ln in result.leading_lines if ln.comment is not None}
            new = [c for c in comments if c not in existing]
            if new:
                lines = [
                    *result.leading_lines,
                    *(cst.EmptyLine(indent=True, comment=cst.Comment(c)) for c in new),
                ]
                result = result.with_changes(leading_lines=lines)
        if before or after:
            stmts = [s for code in before for s in cst.parse_module(code + "\n").body]
            stmts.append(result)
            stmts += [s for code in after for s in cst.parse_module(code + "\n").body]
            return cst.FlattenSentinel(stmts)
        return result


def _without_alias(node, alias: cst.ImportAlias):
    """A SimpleStatementLine holding an Import/ImportFrom, without `alias` (by name and asname)."""
    if not isinstance(node, cst.SimpleStatementLine):
        return node
    body = []
    for small in node.body:
        if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
            names = [a for a in small.names if not alias.deep_equals(a.with_changes(comma=alias.comma))]
            if len(names) != len(small.names):
                if not names:
                    continue
                last_comma = small.names[-1].comma
                if isinstance(small, cst.ImportFrom) and small.rpar is not None:
                    names[-1] = names[-1].with_changes(comma=last_comma)
                else:
                    names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                small = small.with_changes(names=names)
        body.append(small)
    if not body:
        return cst.RemoveFromParent()
    return node.with_changes(body=body)


# ---------------------------------------------------------------------------------------------- fallbacks
def _is_empty_block(block: cst.BaseSuite | None) -> bool:
    # A parsed block always holds a statement; an empty one was emptied by a removal.
    return isinstance(block, cst.IndentedBlock) and len(block.body) == 0


def _only_imports(block: cst.BaseSuite) -> bool:
    if not isinstance(block, cst.IndentedBlock) or not block.body:
        return False
    imports = 0
    for stmt in block.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            return False
        if not all(isinstance(s, (cst.Import, cst.ImportFrom, cst.Pass)) for s in stmt.body):
            return False
        imports += sum(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)
    return imports > 0


_EMPTY = cst.Module(body=[])


def _same_code(a: cst.BaseSuite, b: cst.BaseSuite) -> bool:
    if not (isinstance(a, cst.IndentedBlock) and isinstance(b, cst.IndentedBlock)) or len(a.body) != len(b.body):
        return False
    return all(
        _EMPTY.code_for_node(x.with_changes(leading_lines=())) == _EMPTY.code_for_node(y.with_changes(leading_lines=()))
        for x, y in zip(a.body, b.body)
    )


def _hoist(statement, block: cst.IndentedBlock):
    body = list(block.body)
    first = body[0]
    body[0] = first.with_changes(leading_lines=[*statement.leading_lines, *first.leading_lines])
    if len(body) == 1:
        return body[0]
    return cst.FlattenSentinel(body)


class CollapseEmptyFallbacks(cst.CSTTransformer):
    """After import removals: `try: <import> except ImportError: <import>` and `if <version check>: <import> else:
    <import>` fallbacks whose blocks were emptied are removed, or collapsed to the remaining plain import; so are
    those whose branches now import exactly the same thing. Only blocks emptied by a removal are ever empty (a parsed
    block always holds a statement), so user code is not collapsed. A block left empty otherwise gets `pass`."""

    def leave_Try(self, original_node: cst.Try, updated_node: cst.Try):
        if updated_node.finalbody is not None:
            return _padded(updated_node)
        if (
            updated_node.orelse is None
            and _only_imports(updated_node.body)
            and all(_same_code(h.body, updated_node.body) for h in updated_node.handlers)
        ):
            return _hoist(updated_node, updated_node.body)  # both branches now import the same thing
        handlers_empty = all(_is_empty_block(h.body) for h in updated_node.handlers)
        if not handlers_empty:
            return _padded(updated_node)
        if updated_node.orelse is not None and not _is_empty_block(updated_node.orelse.body):
            return _padded(updated_node)
        if _is_empty_block(updated_node.body):
            return cst.RemoveFromParent()
        if _only_imports(updated_node.body):
            return _hoist(updated_node, updated_node.body)
        return _padded(updated_node)

    def leave_If(self, original_node: cst.If, updated_node: cst.If):
        orelse = updated_node.orelse
        if orelse is not None and not isinstance(orelse, cst.Else):
            return _padded(updated_node)  # elif chains: leave them
        if orelse is not None and _only_imports(updated_node.body) and _same_code(updated_node.body, orelse.body):
            return _hoist(updated_node, updated_node.body)
        body_empty = _is_empty_block(updated_node.body)
        else_empty = orelse is None or _is_empty_block(orelse.body)
        if body_empty and else_empty:
            return cst.RemoveFromParent()
        if body_empty and orelse is not None and _only_imports(orelse.body):
            return _hoist(updated_node, orelse.body)
        if orelse is not None and else_empty and _only_imports(updated_node.body):
            return _hoist(updated_node, updated_node.body)
        return _padded(updated_node)


def _padded(node):
    """Any block left empty gets `pass` (the code must stay valid)."""

    class _Pad(cst.CSTTransformer):
        def leave_IndentedBlock(self, original_node, updated_node):
            if not updated_node.body:
                return updated_node.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])
            return updated_node

    return node.visit(_Pad())


def dedented(code: str) -> str:
    import textwrap

    return textwrap.dedent(code).strip("\n")


def join_lines(lines: Sequence[str]) -> str:
    return "\n".join(lines)
