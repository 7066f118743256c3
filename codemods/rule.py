"""The rule interface: a `Rule` plans edits and diagnostics for one file through a `FileContext`.

A rule never parses and never writes: the engine parsed the file once (Python's ast), every selected rule queries
the same shared analysis (`ctx.analysis`: names, scopes, flow; `ctx.kinds`: what an expression is) and asks for
edits against the unchanged tree; the engine renders them together (see codemods.edits) and fixes imports once.
CONTRIBUTING.md has the guide to writing one.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from re import Pattern
from typing import ClassVar

import libcst as cst
from packaging.version import InvalidVersion, Version

from codemods.analysis import FileAnalysis
from codemods.edits import (
    Comment,
    CstFn,
    EditPlan,
    Insert,
    NodeEdit,
    Removal,
    Text,
    has_comment_above,
    header_lines,
    starts_line,
)
from codemods.kinds import Resolver

__all__ = [
    "COMPAT_FLOOR_GATE",
    "FileContext",
    "Finding",
    "Rule",
    "Settings",
    "compat_floor",
    "requirements",
]

TODO_PREFIX = "# TODO(compat): "
MAX_TODO = 120  # characters of a TODO comment (the long explanation is MIGRATION.md's)
COMPAT_FLOOR_GATE = "compat_floor"  # the pseudo-gate of rules that rewrite *to* compat: the stack compat supports
_SKIP_RE = re.compile(r"#\s*compat:\s*skip(?!-file)\b")
SKIP_FILE_RE = re.compile(r"#\s*compat:\s*skip-file\b")


@dataclass(frozen=True)
class Settings:
    """What a run is configured with. `targets`: package -> the oldest version the rewritten code must run on
    (a package missing from it means "the newest": no limit). `add_todos`: write every diagnostic as a
    `# TODO(compat)` comment too."""

    targets: Mapping[str, str] = field(default_factory=dict)
    add_todos: bool = False
    select: frozenset[str] | None = None  # rule ids; None = all
    skip: frozenset[str] = frozenset()
    _meets: dict = field(default_factory=dict, compare=False, repr=False)  # since -> bool, filled by meets()

    def target(self, package: str) -> Version | None:
        value = self.targets.get(package)
        if value is None:
            return None
        try:
            return Version(str(value))
        except InvalidVersion:
            return None

    def meets(self, since: tuple[tuple[str, str], ...]) -> bool:
        """True when every (package, version) is targeted at >= version (an untargeted package: the newest).
        Memoised: every file asks it for every rule and gate."""
        found = self._meets.get(since)
        if found is None:
            found = self._meets[since] = all(
                (have := self.target(package)) is None or Version(have.base_version) >= Version(needed)
                for package, needed in since
            )
        return found


@dataclass(frozen=True)
class Finding:
    rule: str
    kind: str  # "rewrite" | "todo" (a TODO comment written now) | "diagnostic" (a site left, reported)
    line: int  # 1-based line in the input; 0 when unknown
    message: str = ""
    col: int = 0  # 0-based column (characters) in the input
    cell: int | None = None  # a notebook's code cell (1-based, counting every cell); `line` is then in that cell


@functools.cache
def compat_floor() -> tuple[tuple[str, str], ...]:
    """The oldest transformers/peft the `compat` runtime supports: the minimums of this distribution's `train` extra
    (its metadata; pyproject.toml when running from a checkout that is not installed)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        lines = metadata.requires("model-prep-compat") or []
    except metadata.PackageNotFoundError:
        lines = _pyproject_train_extra()
    floor: dict[str, str] = {}
    for line in lines:
        req = Requirement(line)
        if req.name not in ("transformers", "peft"):
            continue
        for spec in req.specifier:
            if spec.operator in (">=", "=="):
                floor[req.name] = spec.version
    return tuple(sorted(floor.items()))


def _pyproject_train_extra() -> list[str]:  # pragma: no cover - only without an installed distribution
    from pathlib import Path

    import tomllib

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["project"]["optional-dependencies"]["train"])


@functools.cache
def requirements(gates: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(package, first version) for gate names of compat.versions (and the compat floor pseudo-gate)."""
    from compat import versions

    out: list[tuple[str, str]] = []
    for name in gates:
        since = compat_floor() if name == COMPAT_FLOOR_GATE else versions.GATES_BY_NAME[name].since
        for package, version in since:
            out.append((package, version))
    return tuple(out)


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement `check(ctx)`."""

    id: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    triggers: ClassVar[tuple[str, ...]] = ()  # plain substrings: a file with none of them is never parsed
    trigger_regex: ClassVar[Pattern[str] | None] = None  # a finer text check, run when a trigger matched
    gates: ClassVar[tuple[str, ...]] = ()  # compat.versions gate names the rewritten code needs (all of them)
    # gates decided per rewrite inside `check` (`ctx.target_meets`): listed by --list-rules and their packages get a
    # target, but the rule runs whatever side the targets are on (each rewrite that needs one checks it)
    item_gates: ClassVar[tuple[str, ...]] = ()
    anchor: ClassVar[str] = ""  # MIGRATION.md section (default: the id)

    # ------------------------------------------------------------------ class-level API (no parse needed)
    @classmethod
    def link(cls) -> str:
        return f"MIGRATION.md#{cls.anchor or cls.id}"

    @classmethod
    def requirements(cls) -> tuple[tuple[str, str], ...]:
        return requirements(cls.gates)

    @classmethod
    def target_packages(cls) -> tuple[str, ...]:
        """The packages whose target versions the rule's gates (rule-level and per item) compare against."""
        return tuple(sorted({package for package, _ in requirements(cls.gates + cls.item_gates)}))

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        """Selected, not skipped, and the targets are on the new side of every gate of the rule."""
        if settings.select is not None and cls.id not in settings.select:
            return False
        if cls.id in settings.skip:
            return False
        return cls.gate_met(settings)

    @classmethod
    def gate_met(cls, settings: Settings) -> bool:
        return settings.meets(cls.requirements())

    @classmethod
    def matches_text(cls, source: str, settings: Settings | None = None) -> bool:
        """The text tiers of the pre-filter: a trigger substring, then the regex, then `could_apply`."""
        if cls.triggers and not any(t in source for t in cls.triggers):
            return False
        if cls.trigger_regex is not None and cls.trigger_regex.search(source) is None:
            return False
        return cls.could_apply(source, settings or Settings())

    @classmethod
    def could_apply(cls, source: str, settings: Settings) -> bool:
        """Optional last text tier (no parse): False when the rule certainly has nothing to do."""
        return True

    # ------------------------------------------------------------------ per file
    def check(self, ctx: FileContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class FileContext:
    """What a rule sees of one file, and how it asks for edits. One per file, shared by the rules (`rule` is the
    rule being run)."""

    def __init__(
        self,
        source: str,
        analysis: FileAnalysis,
        settings: Settings,
        filename: str | None = None,
        project=None,
    ) -> None:
        self.source = source
        self.analysis = analysis
        self.settings = settings
        self.filename = filename
        self.kinds = Resolver(analysis, project, filename)
        self.text = Text(source)
        self.plan = EditPlan()
        self.findings: list[Finding] = []
        self.rule: type[Rule] | None = None
        self.rule_order: dict[str, int] = {}
        self.skip_lines = _skip_lines(source)
        self.import_requests: list[ImportRequest] = []
        self.import_removals: list[tuple[str, ast.alias]] = []
        self._todos: set[tuple[int, str]] = set()
        self._edited: set[tuple[str, int, str]] = set()
        self._diagnosed: set[tuple[str, int, int, str]] = set()

    # ------------------------------------------------------------------ facts
    @property
    def rule_id(self) -> str:
        assert self.rule is not None
        return self.rule.id

    def target_meets(self, gate: str) -> bool:
        """The targets are on the new side of `gate` (a compat.versions gate name, one of the rule's `gates` or
        `item_gates`: --list-rules shows them and the CLI resolves a target for their packages)."""
        assert self.rule is None or gate in self.rule.gates + self.rule.item_gates, (
            f"{self.rule_id}: gate {gate!r} is not declared in gates/item_gates"
        )
        return self.settings.meets(requirements((gate,)))

    def is_skipped(self, node: ast.AST) -> bool:
        """Inside a statement carrying `# compat: skip` (a simple statement on any of its lines, a block statement on
        its header)."""
        if not self.skip_lines:
            return False
        current: ast.AST | None = node
        while current is not None:
            if isinstance(current, ast.stmt):
                if any(line in self.skip_lines for line in header_lines(current)):
                    return True
            current = self.analysis.parent(current)
        return False

    def position(self, node: ast.AST) -> tuple[int, int]:
        line = getattr(node, "lineno", 0)
        col = self.text.char_col(line, getattr(node, "col_offset", 0)) if line else 0
        return line, col

    # ------------------------------------------------------------------ edits
    def edit(
        self,
        node: ast.AST,
        fn: CstFn,
        message: str,
        *,
        exclusive: bool = False,
        drops: tuple[ast.AST, ...] = (),
        cst_type: type | None = None,
        collapse: bool = False,
        counted: bool = True,
        at: ast.AST | None = None,
        header: bool = False,
    ) -> bool:
        """Ask for `fn(libcst node)` on the libcst node at the position of `node`; counted as one rewrite (unless
        `counted=False`: part of another rewrite), reported at `at` (default: `node`; e.g. the keyword an edit of
        its call drops). `drops`: the ast nodes the edit removes from the code (an import whose every use is dropped
        can go). `header`: `fn` changes only the header of the def `node` is in (its signature, decorators): the
        engine then renders only the header, not the whole body. Returns False (and asks nothing) in a
        `# compat: skip` statement."""
        if self.is_skipped(node):
            return False
        key = (self.rule_id, id(node), message)
        if key in self._edited:
            return False  # the same edit asked twice (a key reached through two paths)
        self._edited.add(key)
        self.plan.add_edit(NodeEdit(self.rule_id, node, fn, message, exclusive, drops, cst_type, collapse, header))
        if counted:
            line, col = self.position(at if at is not None else node)
            self.findings.append(Finding(self.rule_id, "rewrite", line, message, col))
        return True

    def remove_statement(self, stmt: ast.stmt, message: str) -> bool:
        """Remove the statement `stmt`, which has its lines to itself and is not alone in its block (an emptied
        block would need a `pass`); one rewrite. A TODO asked for it stays where it was. Returns False (and asks
        nothing) otherwise, or in a `# compat: skip` statement."""
        a = self.analysis
        if self.is_skipped(stmt) or self.anchor_statement(stmt) is not stmt or a.shares_line(stmt):
            return False
        removed = {id(r.statement) for r in self.plan.removals if r.alias is None}
        if all(s is stmt or id(s) in removed for s in a.block_of(stmt)):
            return False
        self.plan.add_removal(Removal(stmt))
        line, col = self.position(stmt)
        self.findings.append(Finding(self.rule_id, "rewrite", line, message, col))
        return True

    def rename_keyword(self, kw: ast.keyword, new: str, message: str | None = None) -> bool:
        return self.edit(
            kw,
            lambda a: a.with_changes(keyword=cst.Name(new)),
            message or f"{kw.arg}= -> {new}=",
        )

    def rename_attribute(self, node: ast.Attribute, new: str, message: str | None = None) -> bool:
        return self.edit(
            node,
            lambda a: a.with_changes(attr=cst.Name(new)),
            message or f".{node.attr} -> .{new}",
        )

    def rename_string(self, node: ast.Constant, old: str, new: str, message: str | None = None) -> bool:
        """A string literal whose value is `old` -> `new`, quotes and prefix kept."""

        def fn(s):
            if isinstance(s, cst.SimpleString):
                return s.with_changes(value=s.value.replace(old, new, 1))
            return s

        return self.edit(node, fn, message or f'"{old}" -> "{new}"', cst_type=cst.SimpleString)

    def todo(self, node: ast.AST, why: str, *shorter: str) -> None:
        """A `# TODO(compat): <why>; see MIGRATION.md#<anchor>` line above the statement holding `node` (once).
        `shorter`: other wordings, tried in order when `why` would make the comment longer than MAX_TODO; when none
        fits, the last is cut at a word (the comment never exceeds MAX_TODO: the report has the whole message)."""
        if self.is_skipped(node):
            return
        for option in (why, *shorter):
            why = option
            if self.fits(why):
                break
        else:
            why = self._cut(why)
        stmt = self.anchor_statement(node)
        text = self.todo_text(why)
        key = (id(stmt), text)
        if key in self._todos:
            return
        self._todos.add(key)
        line, col = self.position(node)
        if self._todo_present(stmt, text):
            self.findings.append(Finding(self.rule_id, "diagnostic", line, text[len(TODO_PREFIX) :], col))
            return
        self.plan.add_comment(Comment(self.rule_id, stmt, text))
        self.findings.append(Finding(self.rule_id, "todo", line, text[len(TODO_PREFIX) :], col))

    def diagnose(self, node: ast.AST, message: str, *shorter: str) -> None:
        """Report a site this run leaves (`path:line:col: rule message`); a TODO comment with `--add-todos` (then
        `shorter` wordings are tried as for `todo`)."""
        if self.is_skipped(node):
            return
        if self.settings.add_todos:
            self.todo(node, message, *shorter)
            return
        line, col = self.position(node)
        key = (self.rule_id, line, col, message)
        if key in self._diagnosed:
            return
        self._diagnosed.add(key)
        self.findings.append(Finding(self.rule_id, "diagnostic", line, message, col))

    def fits(self, why: str) -> bool:
        """The TODO comment for `why` stays within MAX_TODO characters (use a shorter wording if not)."""
        return len(self.todo_text(why)) <= MAX_TODO

    def _cut(self, why: str) -> str:
        words = " ".join(why.split()).rstrip(".;").split(" ")
        while len(words) > 1 and not self.fits(" ".join(words) + " [...]"):
            words.pop()
        return " ".join(words) + " [...]"

    def todo_text(self, why: str) -> str:
        assert self.rule is not None
        why = " ".join(why.split()).rstrip(".;")
        return f"{TODO_PREFIX}{why}; see {self.rule.link()}"

    def insert_before(self, stmt: ast.stmt, code: str, message: str | None = None, at: ast.AST | None = None) -> None:
        """`code` (unindented, may hold several lines; a blank line where it has one) above `stmt`, indented like
        it. `message`: the insertion is a rewrite of its own, counted and reported at `at` (default: `stmt`)."""
        self._insert(stmt, code, False, message, at)

    def insert_after(self, stmt: ast.stmt, code: str, message: str | None = None, at: ast.AST | None = None) -> None:
        """`code` below `stmt` (see insert_before)."""
        self._insert(stmt, code, True, message, at)

    def _insert(self, stmt: ast.stmt, code: str, after: bool, message: str | None, at: ast.AST | None) -> None:
        if self.is_skipped(stmt):
            return
        self.plan.add_insert(Insert(self.rule_id, stmt, code, after=after))
        if message is not None:
            line, col = self.position(at if at is not None else stmt)
            self.findings.append(Finding(self.rule_id, "rewrite", line, message, col))

    def add_import(
        self,
        module: str,
        name: str | None = None,
        asname: str | None = None,
        *,
        at=None,
    ) -> None:
        """`import module` / `from module import name [as asname]`, unless already there. `at`: a statement to put
        the import right above (a module that imports the library only in functions or behind a guard)."""
        self.import_requests.append(ImportRequest(module, name, asname, at))

    def remove_import(self, alias: ast.alias) -> None:
        """Remove this imported name once nothing uses it (after every rule's edits)."""
        self.import_removals.append((self.rule_id, alias))

    # ------------------------------------------------------------------ statements
    def anchor_statement(self, node: ast.AST) -> ast.stmt:
        """The statement a TODO goes above: the innermost statement holding `node` that starts its line (for an
        `elif`, the whole `if`; for `x = 1; y = f()`, the line's first statement)."""
        a = self.analysis
        stmt = a.statement_of(node)
        assert stmt is not None
        while True:
            parent = a.parent(stmt)
            if (
                isinstance(stmt, ast.If)
                and isinstance(parent, ast.If)
                and parent.orelse == [stmt]
                and self.text.line(stmt.lineno).lstrip().startswith("elif")
            ):
                stmt = parent
                continue
            if starts_line(stmt, self.text):
                return stmt
            holder = a.statement_of(parent) if parent is not None else None
            if holder is not None and holder.lineno == stmt.lineno:
                stmt = holder
                continue
            for name in ("body", "orelse", "finalbody"):
                block = getattr(parent, name, None)
                if isinstance(block, list) and stmt in block:
                    same_line = [s for s in block if s.lineno == stmt.lineno]
                    return same_line[0]
            return stmt

    def _todo_present(self, stmt: ast.stmt, text: str) -> bool:
        return has_comment_above(self.text, stmt, text)


@dataclass(frozen=True)
class ImportRequest:
    module: str
    name: str | None
    asname: str | None
    at: ast.stmt | None = None


def _skip_lines(source: str) -> frozenset[int]:
    if "compat:" not in source:
        return frozenset()
    out = set()
    for i, line in enumerate(re.split(r"\r\n|\r|\n", source), 1):
        if _SKIP_RE.search(line):
            out.add(i)
    return frozenset(out)


SinkPredicate = Callable[[ast.AST, ast.AST], "bool | None"]
