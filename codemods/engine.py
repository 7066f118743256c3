"""The pure engine: ``transform(source, settings) -> Result(source, findings, ...)``.

One parse per file, and only when the cheap text pre-filter says a selected rule could apply; metadata (qualified
names, scopes, parents, positions) is resolved once and shared by every rule until one of them changes the tree.
Nothing here touches the file system: the CLI (compat/codemod.py) reads, decodes, writes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.metadata import MetadataWrapper

from codemods.base import SKIP_FILE_RE, Finding, Rule, Settings, skip_lines

__all__ = ["Result", "active_rules", "prefilter", "transform"]


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
        return self.error is None and bool(self.findings)

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for f in self.findings:
            entry = out.setdefault(f.rule, {"rewrites": 0, "todos": 0})
            entry["rewrites" if f.kind == "rewrite" else "todos"] += 1
        return out


def active_rules(settings: Settings, rules: Sequence[type[Rule]] | None = None) -> list[type[Rule]]:
    """The rules selected by `settings` whose target gate is met."""
    if rules is None:
        from codemods import RULES

        rules = RULES
    return [r for r in rules if r.enabled(settings)]


def prefilter(source: str, rules: Iterable[type[Rule]]) -> list[type[Rule]]:
    return [r for r in rules if r.matches_text(source)]


def transform(
    source: str,
    settings: Settings | None = None,
    *,
    rules: Sequence[type[Rule]] | None = None,
    filename: str | None = None,
) -> Result:
    """Run the selected rules on `source` (a str: decoding and BOMs are the caller's business).

    `rules`: the candidate rule classes (default: the registry filtered by `settings`); they are not re-filtered by
    `settings` when given explicitly, except for the target gate and select/skip.
    """
    settings = settings if settings is not None else Settings()
    candidates = active_rules(settings, rules)
    if "compat:" in source and SKIP_FILE_RE.search(source):
        return Result(source, skipped_file=True)
    matching = prefilter(source, candidates)
    if not matching:
        return Result(source)
    if any(r.uses_ast_check for r in matching):
        try:
            tree = ast.parse(source, filename or "<unknown>")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return Result(source, parsed=True, error=f"parse error: {_one_line(exc)}")
        matching = [r for r in matching if not r.uses_ast_check or r.ast_check(tree)]
        if not matching:
            return Result(source)
    try:
        module = cst.parse_module(source)
    except (cst.ParserSyntaxError, RecursionError, ValueError) as exc:
        return Result(source, parsed=True, error=f"parse error: {_one_line(exc)}")
    lines = skip_lines(source)
    findings: list[Finding] = []
    wrapper: MetadataWrapper | None = MetadataWrapper(module, unsafe_skip_copy=True)
    current = source
    for rule_cls in matching:
        if wrapper is None:
            wrapper = MetadataWrapper(module)  # copies: the tree may share nodes after a rewrite
            current = module.code
            lines = skip_lines(current) if lines else lines
        rule = rule_cls(CodemodContext(filename=filename), settings)
        rule.skip_lines = lines
        rule.source = current
        try:
            new_module = rule.run(wrapper)
        except Exception as exc:  # a bug in one rule must not stop the run: report it for this file
            return Result(source, parsed=True, error=f"rule {rule_cls.id} failed: {type(exc).__name__}: {exc}")
        if rule.findings:
            findings.extend(rule.findings)
            module = new_module
            wrapper = None
    if not findings:
        return Result(source, parsed=True)
    code = module.code
    if code == source:
        return Result(source, parsed=True)
    try:
        ast.parse(code, filename or "<unknown>")
    except SyntaxError as exc:
        return Result(source, findings, parsed=True, error=f"output would not parse: {_one_line(exc)}")
    return Result(code, findings, parsed=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
