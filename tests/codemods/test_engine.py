"""The Rule base class and the engine, with toy rules: TODO comments, skip markers, gates, pre-filter tiers,
lazy metadata, multi-rule runs."""

from __future__ import annotations

import ast
import re

import libcst as cst
import pytest
from libcst.metadata import ScopeProvider

from codemods.base import Rule, Settings, ast_imports
from codemods.engine import transform


class FlagFoo(Rule):
    """Adds a TODO above every statement that calls `foo(...)`; never rewrites."""

    id = "test-flag-foo"
    summary = "test"
    triggers = ("foo",)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "foo":
            self.add_todo(node, "foo is gone" + (" (strict)" if self.settings.strict else ""))


class RenameBar(Rule):
    """bar(...) -> baz(...), counted."""

    id = "test-rename-bar"
    summary = "test"
    triggers = ("bar",)
    trigger_regex = re.compile(r"\bbar\(")
    target = {"transformers": "4.56"}

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if isinstance(original_node.func, cst.Name) and original_node.func.value == "bar":
            self.record(original_node, "bar -> baz")
            return updated_node.with_changes(func=cst.Name("baz"))
        return updated_node


def run(source: str, *rules, **settings) -> str:
    result = transform(source, Settings(**settings), rules=list(rules))
    assert result.error is None, result.error
    again = transform(result.source, Settings(**settings), rules=list(rules))
    assert again.source == result.source and not again.findings, "not idempotent"
    ast.parse(result.source)
    return result.source


TODO = "# TODO(compat): foo is gone; see MIGRATION.md#test-flag-foo"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("x = foo(1)\n", f"{TODO}\nx = foo(1)\n"),
        ("if c:\n    x = foo(1)\n", f"if c:\n    {TODO}\n    x = foo(1)\n"),
        ("if foo(1):\n    pass\n", f"{TODO}\nif foo(1):\n    pass\n"),
        ("if a:\n    pass\nelif foo(1):\n    pass\n", f"{TODO}\nif a:\n    pass\nelif foo(1):\n    pass\n"),
        ("with foo(1) as f, g:\n    pass\n", f"{TODO}\nwith foo(1) as f, g:\n    pass\n"),
        ("for i in foo(1): print(i)\n", f"{TODO}\nfor i in foo(1): print(i)\n"),
        ("@foo(1)\ndef f():\n    pass\n", f"{TODO}\n@foo(1)\ndef f():\n    pass\n"),
        ("def f(a=foo(1)):\n    pass\n", f"{TODO}\ndef f(a=foo(1)):\n    pass\n"),
        ("try:\n    pass\nexcept foo(1):\n    pass\n", f"{TODO}\ntry:\n    pass\nexcept foo(1):\n    pass\n"),
        ("x = 1; y = foo(1); z = foo(2)\n", f"{TODO}\nx = 1; y = foo(1); z = foo(2)\n"),
        ("x = [\n    foo(1),\n    foo(2),\n]\n", f"{TODO}\nx = [\n    foo(1),\n    foo(2),\n]\n"),
        ("class C:\n\tdef m(self):\n\t\treturn foo(1)\n", f"class C:\n\tdef m(self):\n\t\t{TODO}\n\t\treturn foo(1)\n"),
        (f"{TODO}\nx = foo(1)\n", f"{TODO}\nx = foo(1)\n"),
        ("def f():\n    pass\n# trailing\nx = foo(1)\n", f"def f():\n    pass\n# trailing\n{TODO}\nx = foo(1)\n"),
    ],
)
def test_todo_on_simple_and_compound_statements(source, expected):
    assert run(source, FlagFoo) == expected


def test_todo_counts_and_settings():
    result = transform("x = foo(1)\n", Settings(strict=True), rules=[FlagFoo])
    assert [f.kind for f in result.findings] == ["todo"]
    assert "(strict)" in result.source and result.findings[0].line == 1


def test_rewrite_counted_with_line():
    result = transform("a = 1\nb = bar(2)\n", Settings(), rules=[RenameBar])
    assert result.source == "a = 1\nb = baz(2)\n"
    assert [(f.kind, f.line, f.message) for f in result.findings] == [("rewrite", 2, "bar -> baz")]


def test_skip_markers():
    src = "a = bar(1)  # compat: skip\nb = bar(2)\nc = [\n    bar(3),  # compat: skip\n]\n"
    assert run(src, RenameBar) == "a = bar(1)  # compat: skip\nb = baz(2)\nc = [\n    bar(3),  # compat: skip\n]\n"
    block = "if x:  # compat: skip\n    a = bar(1)\nb = bar(2)\n"
    assert run(block, RenameBar) == "if x:  # compat: skip\n    a = bar(1)\nb = baz(2)\n"
    assert run("# compat: skip-file\nb = bar(2)\n", RenameBar) == "# compat: skip-file\nb = bar(2)\n"
    result = transform("a = bar(1)  # compat: skip\n", Settings(), rules=[RenameBar])
    assert not result.findings


def test_target_gate_both_sides():
    src = "b = bar(2)\n"
    assert run(src, RenameBar, targets={"transformers": "4.55"}) == src
    assert run(src, RenameBar, targets={"transformers": "4.56.0"}) == "b = baz(2)\n"
    assert run(src, RenameBar) == "b = baz(2)\n"  # no target = newest
    assert not RenameBar.enabled(Settings(skip=frozenset({"test-rename-bar"})))
    assert not RenameBar.enabled(Settings(select=frozenset({"other"})))


def test_prefilter_tiers():
    assert not RenameBar.matches_text("barrier = 1")  # trigger, but not the regex
    assert RenameBar.matches_text("x = bar(1)")
    result = transform("barrier = 1\n", Settings(), rules=[RenameBar])
    assert not result.parsed


class AstGated(RenameBar):
    id = "test-ast-gated"
    uses_ast_check = True

    @classmethod
    def ast_check(cls, tree: ast.Module) -> bool:
        return any(q.startswith("lib.") for q in ast_imports(tree).values())


def test_ast_check_tier(monkeypatch):
    parsed = []
    real = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda *a, **k: parsed.append(1) or real(*a, **k))
    assert transform("x = bar(1)\n", Settings(), rules=[AstGated]).source == "x = bar(1)\n"
    assert parsed == []  # the ast check said no: libcst never parsed
    assert transform("from lib import bar\nx = bar(1)\n", Settings(), rules=[AstGated]).source.endswith("baz(1)\n")
    assert ast_imports(ast.parse("import a.b as c\nimport d.e\nfrom f import g as h\n")) == {
        "c": "a.b",
        "d": "d",
        "h": "f.g",
    }


def test_metadata_is_lazy():
    seen = {}

    class NoMeta(RenameBar):
        id = "test-no-meta"

        def leave_Module(self, original_node, updated_node):
            seen["scope"] = ScopeProvider in self.context.wrapper._metadata
            return updated_node

    transform("x = bar(1)\n", Settings(), rules=[NoMeta])
    assert seen["scope"] is False


def test_two_rules_one_file():
    src = "x = bar(1)\ny = foo(2)\n"
    out = run(src, RenameBar, FlagFoo)
    assert out == f"x = baz(1)\n{TODO}\ny = foo(2)\n"
    result = transform(src, Settings(), rules=[RenameBar, FlagFoo])
    assert sorted(f.rule for f in result.findings) == ["test-flag-foo", "test-rename-bar"]


def test_unchanged_source_is_returned_as_is():
    src = "x = bar  # no call\r\n\tfoo = 1\r\n" if False else "x = bar  # bar( in a comment\r\n"
    result = transform(src, Settings(), rules=[RenameBar])
    assert result.source is src and not result.changed


def test_parse_error_reported():
    result = transform("x = bar(\n", Settings(), rules=[RenameBar])
    assert result.error and result.error.startswith("parse error") and result.source == "x = bar(\n"


def test_result_unpacks_to_source_and_findings():
    new, findings = transform("b = bar(2)\n", Settings(), rules=[RenameBar])
    assert new == "b = baz(2)\n" and [f.rule for f in findings] == ["test-rename-bar"]
