"""The rule interface of the codemod: every rewrite rule is one small `Rule` subclass in its own module.

How to write a rule
===================

1. Create ``codemods/<package>_<what>.py`` with one class::

       import ast, re
       import libcst as cst
       from codemods.base import Rule, ast_imports

       class MyRule(Rule):
           id = "transformers-foo"                    # also the fixture directory name
           summary = "foo= -> bar= in from_pretrained" # one line, shown by --list-rules
           triggers = ("foo",)                         # plain substrings: a file containing none is never parsed
           trigger_regex = re.compile(r"\\bfoo\\s*=")     # optional finer check, run only when a trigger matched
           target = {"transformers": "4.56"}           # versions the rewritten code needs (the target gate)
           anchor = "transformers-foo"                 # MIGRATION.md section (defaults to the id)
           uses_ast_check = True                       # optional: a cheap check on Python's own AST first

           @classmethod
           def ast_check(cls, tree: ast.Module) -> bool:  # False: certainly nothing to do, libcst never parses
               imports = ast_imports(tree)
               return any(isinstance(n, ast.keyword) and n.arg == "foo" for n in ast.walk(tree)) and any(
                   q.startswith("transformers") for q in imports.values())

           def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
               if "transformers.AutoModel.from_pretrained" not in self.qualified_names(original_node.func):
                   return updated_node
               ...
               self.record(original_node, "foo= -> bar=")   # count EVERY change you make
               return updated_node.with_changes(args=new_args)

   A rule is a libcst ``VisitorBasedCodemodCommand`` (so a ``CSTTransformer``): write ``visit_*``/``leave_*``
   methods, use ``self.get_metadata(...)`` with the providers in ``METADATA_DEPENDENCIES`` (qualified names,
   scopes, parents, positions: each resolved lazily on its first use, once per file, shared by all rules; so do
   cheap structural checks first and ask for qualified names only for nodes that could match), and schedule imports with
   ``self.add_needed_import(module, obj)`` / ``self.remove_unused_import(module, obj, asname)`` (libcst's
   ``AddImportsVisitor``/``RemoveImportsVisitor``; the removal only happens when the name is unused afterwards, and
   a try/except or if/else fallback whose blocks all became empty is collapsed afterwards).

   The pre-filter is tiered, cheapest first, and a file is parsed by libcst only when some rule passes every tier:
   ``triggers`` (substrings, checked on the raw bytes for all files), ``trigger_regex``, ``could_apply(source)``,
   ``ast_check(tree)``. Make them precise: on big trees (transformers, diffusers) the libcst parse plus scope
   analysis of a candidate file costs 0.1-1 s, the checks above microseconds to milliseconds.

2. Contract with the engine:

   - Call ``self.record(original_node, message)`` for every rewrite. The engine *discards the output of a rule that
     recorded nothing* (that is what keeps unchanged files byte-identical and the run fast).
   - Where a rewrite is not safe, leave the code and call ``self.add_todo(original_node, why)``: it puts one
     ``# TODO(compat): <why>; see MIGRATION.md#<anchor>`` line above the statement that contains the node (simple or
     compound statement), never twice (idempotent), and counts it.
   - Always pass *original* nodes (the ones metadata was computed on) to ``record``/``add_todo``/``get_metadata``.
   - ``self.source`` is the text of the file the rule runs on (cheap whole-file checks; don't parse it).
   - ``self.settings`` holds the run's settings: ``targets`` (package -> version) and ``strict`` (flag ambiguous
     cases with TODOs too).
   - Lines carrying ``# compat: skip`` are handled for you: any change inside such a simple statement (or a block
     statement whose first line carries it) is reverted and not counted.
   - Never touch strings, comments, f-strings or ``getattr(x, "name")``; never touch the user's own functions,
     methods or parameters with the same name (``self.resolves_to(node, OLD_NAMES)`` is True only when *every*
     qualified name of the node is one of yours, i.e. it came from the import you rewrite).

3. Register it: append one import line + class name to ``RULES`` in ``codemods/__init__.py``.

4. Fixtures: ``tests/codemods/fixtures/<rule id>/<case>.py.in`` + ``<case>.py.out`` (a negative case: ``.py.out``
   equal to ``.py.in``). Optional first line ``# target: transformers=4.55 peft=0.12`` in the ``.py.in`` sets the
   target versions for that case (both files keep that line: it is an ordinary comment). The fixture runner
   (tests/codemods/test_fixtures.py) checks output == expected, the output parses, and a second run is a no-op.
   Only the rule of the directory runs on its fixtures.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from re import Pattern
from typing import ClassVar, Union

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.metadata import (
    MetadataWrapper,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    ScopeProvider,
)
from packaging.version import InvalidVersion, Version

__all__ = ["COMPAT_FLOOR", "Finding", "Rule", "Settings"]

# The oldest stack the `compat` runtime supports: rules that rewrite *to* compat need it.
COMPAT_FLOOR: Mapping[str, str] = {"transformers": "4.46", "peft": "0.12"}

_TODO_PREFIX = "# TODO(compat): "


@dataclass(frozen=True)
class Settings:
    """What a run is configured with. `targets`: package -> the oldest version the rewritten code must run on
    (a package missing from it means "the newest": no limit)."""

    targets: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False
    select: frozenset[str] | None = None  # rule ids; None = all
    skip: frozenset[str] = frozenset()

    def target(self, package: str) -> Version | None:
        value = self.targets.get(package)
        if value is None:
            return None
        try:
            return Version(str(value))
        except InvalidVersion:
            return None


@dataclass(frozen=True)
class Finding:
    rule: str
    kind: str  # "rewrite" | "todo"
    line: int  # 1-based line in the source the rule saw; 0 when unknown
    message: str = ""


Statement = Union[cst.SimpleStatementLine, cst.BaseCompoundStatement]


class Rule(VisitorBasedCodemodCommand):
    """Base class of every rule. See the module docstring for the guide."""

    id: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    triggers: ClassVar[tuple[str, ...]] = ()
    trigger_regex: ClassVar[Pattern[str] | None] = None
    target: ClassVar[Mapping[str, str]] = {}
    anchor: ClassVar[str] = ""

    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider, ParentNodeProvider, PositionProvider)

    # ------------------------------------------------------------------ class-level API (no parse needed)
    @classmethod
    def link(cls) -> str:
        return f"MIGRATION.md#{cls.anchor or cls.id}"

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        """Selected, not skipped, and every package of the target gate is targeted at >= the gate's version."""
        if settings.select is not None and cls.id not in settings.select:
            return False
        if cls.id in settings.skip:
            return False
        return cls.gate_met(settings)

    @classmethod
    def gate_met(cls, settings: Settings) -> bool:
        for package, needed in cls.target.items():
            have = settings.target(package)
            if have is not None and Version(have.base_version) < Version(needed):
                return False
        return True

    @classmethod
    def matches_text(cls, source: str) -> bool:
        """The cheap pre-filter: some trigger substring, then the optional regex, then `could_apply`."""
        if cls.triggers and not any(t in source for t in cls.triggers):
            return False
        if cls.trigger_regex is not None and cls.trigger_regex.search(source) is None:
            return False
        return cls.could_apply(source)

    @classmethod
    def could_apply(cls, source: str) -> bool:
        """Hook for a finer (still parse-free) pre-filter; runs only when the triggers matched."""
        return True

    # Set to True when overriding `ast_check`.
    uses_ast_check: ClassVar[bool] = False

    @classmethod
    def ast_check(cls, tree: ast.Module) -> bool:
        """Optional last pre-filter, on Python's own AST (the C parser: about 10x cheaper than the libcst parse and
        far cheaper than scope analysis; parsed once per file and shared by the rules that use it). Return False
        when the rule certainly has nothing to do (e.g. no call with a `torch_dtype=` keyword on a name imported
        from transformers: see `ast_imports`). Set `uses_ast_check = True` to enable it."""
        return True

    # ------------------------------------------------------------------ instance
    def __init__(self, context: CodemodContext, settings: Settings | None = None) -> None:
        super().__init__(context)
        self.settings = settings if settings is not None else Settings()
        self.findings: list[Finding] = []
        self.skip_lines: frozenset[int] = frozenset()
        self.source: str = ""  # the source text this rule runs on (set by the engine): for cheap whole-file checks
        self._todos: dict[int, list[str]] = {}

    # helpers for rules
    def line_of(self, node: cst.CSTNode) -> int:
        pos = self.get_metadata(PositionProvider, node, None)
        return pos.start.line if pos is not None else 0

    def record(self, node: cst.CSTNode, message: str = "") -> None:
        """Count one rewrite (pass the original node)."""
        self.findings.append(Finding(self.id, "rewrite", self.line_of(node), message))

    def qualified_names(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}

    def resolves_to(self, node: cst.CSTNode, names: Iterable[str]) -> bool:
        """True when the node has qualified names and all of them are in `names`."""
        found = self.qualified_names(node)
        return bool(found) and found <= set(names)

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.get_metadata(ParentNodeProvider, node, None)

    def enclosing_statement(self, node: cst.CSTNode) -> Statement | None:
        """The statement a TODO comment goes above: the nearest simple statement line or compound statement
        (for an `elif`, the whole `if`)."""
        current: cst.CSTNode | None = node
        while current is not None:
            if isinstance(current, cst.SimpleStatementLine):
                return current
            if isinstance(current, cst.BaseCompoundStatement):
                parent = self.parent(current)
                if isinstance(parent, cst.If) and parent.orelse is current:
                    current = parent
                    continue
                return current
            current = self.parent(current)
        return None

    def note_import_removal(self, import_node: cst.CSTNode) -> None:
        """Call when scheduling the removal of an import statement: if it is the first statement of a block, the
        blank line after it is dropped too (instead of leaving the block starting with an empty line)."""
        line = self.parent(import_node)
        block = self.parent(line) if line is not None else None
        if isinstance(block, cst.IndentedBlock) and len(block.body) > 1 and block.body[0] is line:
            following = block.body[1]
            if following.leading_lines and all(e.comment is None for e in following.leading_lines):
                self.context.scratch.setdefault(STRIP_BLANK_KEY, set()).add(statement_key(following))

    def todo_text(self, why: str) -> str:
        why = " ".join(why.split()).rstrip(".;")
        return f"{_TODO_PREFIX}{why}; see {self.link()}"

    def add_todo(self, node: cst.CSTNode, why: str) -> None:
        """Ask for `# TODO(compat): <why>; see MIGRATION.md#<anchor>` above the statement containing `node`."""
        stmt = self.enclosing_statement(node)
        if stmt is None:
            return
        texts = self._todos.setdefault(id(stmt), [])
        text = self.todo_text(why)
        if text not in texts:
            texts.append(text)

    # ------------------------------------------------------------------ engine plumbing
    def on_leave(self, original_node, updated_node):  # type: ignore[override]
        result = super().on_leave(original_node, updated_node)
        if isinstance(original_node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            if self.skip_lines and self._is_skipped(original_node):
                self._todos.pop(id(original_node), None)
                if result is not original_node:
                    self._drop_findings_inside(original_node)
                return original_node
            texts = self._todos.pop(id(original_node), None)
            if texts and isinstance(result, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                result = self._with_todos(original_node, result, texts)
        return result

    def _statement_lines(self, stmt: cst.CSTNode) -> range:
        pos = self.get_metadata(PositionProvider, stmt, None)
        if pos is None:
            return range(0)
        if isinstance(stmt, cst.SimpleStatementLine):
            return range(pos.start.line, pos.end.line + 1)
        return range(pos.start.line, pos.start.line + 1)

    def _is_skipped(self, stmt: cst.CSTNode) -> bool:
        return any(line in self.skip_lines for line in self._statement_lines(stmt))

    def _drop_findings_inside(self, stmt: cst.CSTNode) -> None:
        pos = self.get_metadata(PositionProvider, stmt, None)
        if pos is None:
            return
        lines = range(pos.start.line, pos.end.line + 1)
        self.findings = [f for f in self.findings if f.line not in lines]

    def _with_todos(self, original: Statement, node: Statement, texts: Sequence[str]) -> Statement:
        existing = {line.comment.value.strip() for line in node.leading_lines if line.comment is not None}
        module = self.context.wrapper.module if self.context.wrapper is not None else None
        if module is not None and module.body and module.body[0] is original:
            # comments above the first statement of a file are parsed into the module header
            existing |= {line.comment.value.strip() for line in module.header if line.comment is not None}
        new = [t for t in texts if t not in existing]
        if not new:
            return node
        line = self.line_of(original)
        for text in new:
            self.findings.append(Finding(self.id, "todo", line, text[len(_TODO_PREFIX) :]))
        lines = list(node.leading_lines) + [cst.EmptyLine(indent=True, comment=cst.Comment(t)) for t in new]
        return node.with_changes(leading_lines=lines)

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        return tree.visit(self)

    def run(self, wrapper: MetadataWrapper) -> cst.Module:
        """Run on a module whose metadata is resolved lazily by `wrapper` (on the first `get_metadata` of each
        provider, then cached in the wrapper: shared by all rules of the file). A rule that never asks for
        qualified names (because its cheap structural checks found nothing) never pays for scope analysis.
        Returns `wrapper.module` itself when the rule recorded nothing."""
        self.context = replace(self.context, wrapper=wrapper)
        self.metadata = _LazyMetadata(wrapper, self.get_inherited_dependencies())  # type: ignore[assignment]
        try:
            tree = self.transform_module_impl(wrapper.module)
        finally:
            self.metadata = {}
        if not self.findings:
            return wrapper.module
        if AddImportsVisitor.CONTEXT_KEY in self.context.scratch:
            tree = AddImportsVisitor(self.context).transform_module(tree)
        if self.context.scratch.get(RemoveImportsVisitor.CONTEXT_KEY):
            tree = RemoveImportsVisitor(self.context).transform_module(tree)
        tree = tree.visit(CollapseEmptyFallbacks(frozenset(self.context.scratch.get(STRIP_BLANK_KEY, ()))))
        return tree


class _LazyMetadata(Mapping):
    """`self.metadata` of a running rule: provider -> {node: value}, resolved on first access."""

    def __init__(self, wrapper: MetadataWrapper, providers) -> None:
        self._wrapper = wrapper
        self._providers = frozenset(providers)
        self._tables: dict = {}

    def __getitem__(self, provider):
        table = self._tables.get(provider)
        if table is None:
            if provider not in self._providers:
                raise KeyError(provider)
            table = self._tables[provider] = self._wrapper.resolve(provider)
        return table

    def __contains__(self, provider) -> bool:
        return provider in self._providers

    def __iter__(self):
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)


# ---------------------------------------------------------------------- cleanup after import removal
_SKIP_RE = re.compile(r"#\s*compat:\s*skip(?!-file)\b")
SKIP_FILE_RE = re.compile(r"#\s*compat:\s*skip-file\b")


def ast_imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> imported qualified name, for every absolute import anywhere in the file (cached on the tree):
    `import a.b as c` -> {"c": "a.b"}; `import a.b` -> {"a": "a"}; `from a import b as c` -> {"c": "a.b"}."""
    cached = getattr(tree, "_compat_imports", None)
    if cached is not None:
        return cached
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    found[head] = head
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    tree._compat_imports = found  # type: ignore[attr-defined]
    return found


def skip_lines(source: str) -> frozenset[int]:
    if "compat:" not in source:
        return frozenset()
    return frozenset(i for i, line in enumerate(source.splitlines(), 1) if _SKIP_RE.search(line))


def _is_empty_block(block: cst.BaseSuite | None) -> bool:
    # A parsed block always holds a statement; an empty one was emptied by RemoveImportsVisitor.
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


def _hoist(statement: Statement, block: cst.IndentedBlock):
    body = list(block.body)
    first = body[0]
    body[0] = first.with_changes(leading_lines=[*statement.leading_lines, *first.leading_lines])
    return cst.FlattenSentinel(body)


STRIP_BLANK_KEY = "compat_strip_leading_blank"


def statement_key(stmt: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(stmt.with_changes(leading_lines=()))


class CollapseEmptyFallbacks(cst.CSTTransformer):
    """After a rewrite: `try: <import> except ImportError: <import>` and `if <version check>: <import> else:
    <import>` fallbacks whose blocks were emptied (by import removal) are removed, or collapsed to the remaining
    plain import; so are those whose branches now import exactly the same thing. Only blocks emptied by the rewrite
    are ever empty (a parsed block always holds a statement), so user code is not collapsed. A blank line left at
    the top of a block by a removed first-statement import is dropped (`strip_keys`: statements that followed one)."""

    def __init__(self, strip_keys: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.strip_keys = strip_keys

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock):
        if not self.strip_keys or not updated_node.body:
            return updated_node
        first = updated_node.body[0]
        lines = first.leading_lines
        if lines and all(line.comment is None for line in lines) and statement_key(first) in self.strip_keys:
            body = [first.with_changes(leading_lines=()), *updated_node.body[1:]]
            return updated_node.with_changes(body=body)
        return updated_node

    def leave_Try(self, original_node: cst.Try, updated_node: cst.Try):
        if updated_node.finalbody is not None:
            return updated_node
        if (
            updated_node.orelse is None
            and _only_imports(updated_node.body)
            and all(_same_code(h.body, updated_node.body) for h in updated_node.handlers)
        ):
            return _hoist(updated_node, updated_node.body)  # both branches now import the same thing
        handlers_empty = all(_is_empty_block(h.body) for h in updated_node.handlers)
        if not handlers_empty:
            return updated_node
        if updated_node.orelse is not None and not _is_empty_block(updated_node.orelse.body):
            return updated_node
        if _is_empty_block(updated_node.body):
            return cst.RemoveFromParent()
        if _only_imports(updated_node.body):
            return _hoist(updated_node, updated_node.body)
        return updated_node

    def leave_If(self, original_node: cst.If, updated_node: cst.If):
        orelse = updated_node.orelse
        if orelse is not None and not isinstance(orelse, cst.Else):
            return updated_node  # elif chains: leave them
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
        return updated_node
