"""The pure engine: `transform(source, settings) -> Result(source, findings, ...)`.

Per file: the text pre-filter (each selected rule's trigger words, then its regex), one `ast.parse`, one shared
analysis (codemods.analysis, codemods.kinds), every rule plans its edits against that same unchanged tree, imports
are fixed once (codemods.imports), and libcst renders all the edits together, parsing only the statements that
change (codemods.edits). The output must parse, or the file is reported and left as it was. Nothing here touches
the file system.

Conflicts: edits on one node compose in rule order. When two rules each want to replace the same node outright
(exclusive edits), the first rule in registry order wins and the engine runs once more on its output, so the
other rule sees the new code (a fixpoint: a second run of the CLI then changes nothing).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

from codemods.analysis import FileAnalysis
from codemods.edits import RenderError, render
from codemods.imports import finalize_imports
from codemods.rule import SKIP_FILE_RE, FileContext, Finding, Rule, Settings

__all__ = ["Result", "active_rules", "prefilter", "transform"]

_MAX_PASSES = 3


@dataclass
class Result:
    source: str
    findings: list[Finding] = field(default_factory=list)
    parsed: bool = False  # False: no rule's pre-filter matched (or skip-file), the file was never parsed
    skipped_file: bool = False  # `# compat: skip-file`
    error: str | None = None  # set when the file could not be parsed or the output did not parse

    def __iter__(self):
        """`new_source, findings = transform(source, settings)`."""
        return iter((self.source, self.findings))

    @property
    def changed(self) -> bool:
        return self.error is None and any(f.kind != "diagnostic" for f in self.findings)

    @property
    def diagnostics(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "diagnostic"]

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for f in self.findings:
            entry = out.setdefault(f.rule, {"rewrites": 0, "todos": 0, "diagnostics": 0})
            entry[{"rewrite": "rewrites", "todo": "todos"}.get(f.kind, "diagnostics")] += 1
        return out


def active_rules(settings: Settings, rules: Sequence[type[Rule]] | None = None) -> list[type[Rule]]:
    """The rules selected by `settings` whose target gates are met."""
    if rules is None:
        from codemods import RULES

        rules = RULES
    return [r for r in rules if r.enabled(settings)]


def prefilter(source: str, rules: Sequence[type[Rule]], settings: Settings) -> list[type[Rule]]:
    return [r for r in rules if r.matches_text(source, settings)]


def transform(
    source: str,
    settings: Settings | None = None,
    *,
    rules: Sequence[type[Rule]] | None = None,
    filename: str | None = None,
    project=None,
) -> Result:
    """Run the selected rules on `source` (a str: decoding and BOMs are the caller's business). `rules`: the
    candidate rule classes (default: the registry), filtered by `settings` (select/skip, target gates). `project`:
    a codemods.project.Project, for classes defined in other files of the same project."""
    settings = settings if settings is not None else Settings()
    candidates = active_rules(settings, rules)
    if "compat:" in source and SKIP_FILE_RE.search(source):
        return Result(source, skipped_file=True)
    matching = prefilter(source, candidates, settings)
    if not matching:
        return Result(source)
    findings: list[Finding] = []
    current = source
    for _ in range(_MAX_PASSES):
        result, again = _one_pass(current, settings, matching, filename, project)
        if result.error is not None:
            return Result(source, findings + result.findings, parsed=True, error=result.error)
        findings = [f for f in findings if f.kind != "diagnostic"] + result.findings
        current = result.source
        if not again:
            break
        matching = prefilter(current, candidates, settings)
    if current == source:
        return Result(source, [f for f in findings if f.kind == "diagnostic"], parsed=True)
    return Result(current, findings, parsed=True)


def _one_pass(source, settings, rules, filename, project) -> tuple[Result, bool]:
    try:
        tree = ast.parse(source, filename or "<unknown>")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return Result(source, parsed=True, error=f"parse error: {_one_line(exc)}"), False
    analysis = FileAnalysis(source, tree)
    ctx = FileContext(source, analysis, settings, filename, project)
    for order, rule_cls in enumerate(rules):
        ctx.rule = rule_cls
        ctx.rule_order[rule_cls.id] = order
        try:
            rule_cls().check(ctx)
        except Exception as exc:  # a bug in one rule must not stop the run: report it for this file
            return Result(
                source,
                parsed=True,
                error=f"rule {rule_cls.id} failed: {type(exc).__name__}: {exc}",
            ), False
    again = _drop_conflicts(ctx)
    try:
        finalize_imports(ctx)
        findings = _sorted(ctx)
        if not ctx.plan:
            return Result(source, findings, parsed=True), False
        code = render(source, ctx.plan, analysis.parent)
    except RenderError as exc:
        return Result(source, parsed=True, error=f"could not render the edits: {exc}"), False
    if code == source:
        return Result(source, [f for f in findings if f.kind == "diagnostic"], parsed=True), False
    try:
        ast.parse(code, filename or "<unknown>")
    except SyntaxError as exc:
        return Result(
            source,
            findings,
            parsed=True,
            error=f"output would not parse: {_one_line(exc)}",
        ), False
    return Result(code, findings, parsed=True), again


def _drop_conflicts(ctx: FileContext) -> bool:
    """Keep the first exclusive edit of each node (registry order); the others wait for the next pass."""
    owner: dict[int, str] = {}
    dropped = []
    for edit in ctx.plan.edits:
        if not edit.exclusive:
            continue
        first = owner.setdefault(id(edit.target), edit.rule)
        if first != edit.rule:
            dropped.append(edit)
    if not dropped:
        return False
    ids = {id(e) for e in dropped}
    ctx.plan.edits = [e for e in ctx.plan.edits if id(e) not in ids]
    positions = {(e.rule, ctx.position(e.target), e.message) for e in dropped}
    ctx.findings = [f for f in ctx.findings if (f.rule, (f.line, f.col), f.message) not in positions]
    return True


def _sorted(ctx: FileContext) -> list[Finding]:
    order = ctx.rule_order
    kinds = {"rewrite": 0, "todo": 1, "diagnostic": 2}
    return sorted(
        ctx.findings,
        key=lambda f: (f.line, f.col, order.get(f.rule, 99), kinds[f.kind], f.message),
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
