"""The engine with toy rules: TODO placement, skip markers, gates, pre-filter tiers, one pass for every rule,
composition and conflicts of edits, fragments (libcst parses only the statements that change), text safety."""

from __future__ import annotations

import ast
import re

import libcst as cst
import pytest

from codemods.engine import transform
from codemods.rule import Rule, Settings


class FlagFoo(Rule):
    """Adds a TODO above every statement that calls `foo(...)`; never rewrites."""

    id = "test-flag-foo"
    summary = "test"
    triggers = ("foo",)

    def check(self, ctx):
        for call in ctx.analysis.calls_by_name.get("foo", ()):
            ctx.todo(call, "foo is gone")


class RenameBar(Rule):
    """bar(...) -> baz(...), counted."""

    id = "test-rename-bar"
    summary = "test"
    triggers = ("bar",)
    trigger_regex = re.compile(r"\bbar\(")
    gates = ("dtype_kwarg",)  # transformers >= 4.56

    def check(self, ctx):
        for call in ctx.analysis.calls_by_name.get("bar", ()):
            ctx.edit(call.func, lambda n: n.with_changes(value="baz"), "bar -> baz")


class ReportQux(Rule):
    """A diagnostic for every `qux(...)`."""

    id = "test-report-qux"
    summary = "test"
    triggers = ("qux",)

    def check(self, ctx):
        for call in ctx.analysis.calls_by_name.get("qux", ()):
            ctx.diagnose(call, "qux needs a look")


def run(source: str, *rules, **settings) -> str:
    result = transform(source, Settings(**settings), rules=list(rules))
    assert result.error is None, result.error
    again = transform(result.source, Settings(**settings), rules=list(rules))
    assert again.source == result.source, "not idempotent"
    assert not [f for f in again.findings if f.kind != "diagnostic"], "second run changed something"
    ast.parse(result.source)
    return result.source


TODO = "# TODO(compat): foo is gone; see MIGRATION.md#test-flag-foo"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("x = foo(1)\n", f"{TODO}\nx = foo(1)\n"),
        ("if c:\n    x = foo(1)\n", f"if c:\n    {TODO}\n    x = foo(1)\n"),
        ("if foo(1):\n    pass\n", f"{TODO}\nif foo(1):\n    pass\n"),
        (
            "if a:\n    pass\nelif foo(1):\n    pass\n",
            f"{TODO}\nif a:\n    pass\nelif foo(1):\n    pass\n",
        ),
        (
            "with foo(1) as f, g:\n    pass\n",
            f"{TODO}\nwith foo(1) as f, g:\n    pass\n",
        ),
        ("for i in foo(1): print(i)\n", f"{TODO}\nfor i in foo(1): print(i)\n"),
        ("@foo(1)\ndef f():\n    pass\n", f"{TODO}\n@foo(1)\ndef f():\n    pass\n"),
        ("def f(a=foo(1)):\n    pass\n", f"{TODO}\ndef f(a=foo(1)):\n    pass\n"),
        (
            "try:\n    pass\nexcept foo(1):\n    pass\n",
            f"{TODO}\ntry:\n    pass\nexcept foo(1):\n    pass\n",
        ),
        ("x = 1; y = foo(1); z = foo(2)\n", f"{TODO}\nx = 1; y = foo(1); z = foo(2)\n"),
        (
            "x = [\n    foo(1),\n    foo(2),\n]\n",
            f"{TODO}\nx = [\n    foo(1),\n    foo(2),\n]\n",
        ),
        (
            "class C:\n\tdef m(self):\n\t\treturn foo(1)\n",
            f"class C:\n\tdef m(self):\n\t\t{TODO}\n\t\treturn foo(1)\n",
        ),
        (f"{TODO}\nx = foo(1)\n", f"{TODO}\nx = foo(1)\n"),
        (
            "def f():\n    pass\n# trailing\nx = foo(1)\n",
            f"def f():\n    pass\n# trailing\n{TODO}\nx = foo(1)\n",
        ),
        ("if c: x = foo(1)\n", f"{TODO}\nif c: x = foo(1)\n"),
    ],
)
def test_todo_on_simple_and_compound_statements(source, expected):
    assert run(source, FlagFoo) == expected


def test_todo_already_there_is_a_diagnostic_not_a_change():
    result = transform(f"{TODO}\nx = foo(1)\n", Settings(), rules=[FlagFoo])
    assert not result.changed
    assert [(f.kind, f.line) for f in result.findings] == [("diagnostic", 2)]


def test_rewrite_counted_with_line_and_column():
    result = transform("a = 1\nb = bar(2)\n", Settings(), rules=[RenameBar])
    assert result.source == "a = 1\nb = baz(2)\n"
    assert [(f.kind, f.line, f.col, f.message) for f in result.findings] == [("rewrite", 2, 4, "bar -> baz")]


def test_diagnostics_change_nothing_unless_add_todos():
    src = "x = qux(1)\n"
    plain = transform(src, Settings(), rules=[ReportQux])
    assert plain.source == src and not plain.changed
    assert [(f.kind, f.line, f.col, f.message) for f in plain.findings] == [("diagnostic", 1, 4, "qux needs a look")]
    todos = transform(src, Settings(add_todos=True), rules=[ReportQux])
    assert todos.source == "# TODO(compat): qux needs a look; see MIGRATION.md#test-report-qux\nx = qux(1)\n"
    assert [f.kind for f in todos.findings] == ["todo"]


def test_skip_markers():
    src = "a = bar(1)  # compat: skip\nb = bar(2)\nc = [\n    bar(3),  # compat: skip\n]\n"
    assert run(src, RenameBar) == "a = bar(1)  # compat: skip\nb = baz(2)\nc = [\n    bar(3),  # compat: skip\n]\n"
    block = "if x:  # compat: skip\n    a = bar(1)\nb = bar(2)\n"
    assert run(block, RenameBar) == "if x:  # compat: skip\n    a = bar(1)\nb = baz(2)\n"
    assert run("# compat: skip-file\nb = bar(2)\n", RenameBar) == "# compat: skip-file\nb = bar(2)\n"
    assert not transform("a = bar(1)  # compat: skip\n", Settings(), rules=[RenameBar]).findings
    assert not transform("a = qux(1)  # compat: skip\n", Settings(), rules=[ReportQux]).findings


def test_target_gate_both_sides():
    src = "b = bar(2)\n"
    assert run(src, RenameBar, targets={"transformers": "4.55"}) == src
    assert run(src, RenameBar, targets={"transformers": "4.56.0"}) == "b = baz(2)\n"
    assert run(src, RenameBar) == "b = baz(2)\n"  # no target = newest
    assert RenameBar.requirements() == (("transformers", "4.56.0"),)
    assert not RenameBar.enabled(Settings(skip=frozenset({"test-rename-bar"})))
    assert not RenameBar.enabled(Settings(select=frozenset({"other"})))


def test_prefilter_tiers_mean_no_parse(monkeypatch):
    assert not RenameBar.matches_text("barrier = 1")  # trigger, but not the regex
    assert RenameBar.matches_text("x = bar(1)")
    calls = []
    real = ast.parse
    monkeypatch.setattr(ast, "parse", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = transform("barrier = 1\n", Settings(), rules=[RenameBar])
    assert not result.parsed and calls == []


def test_libcst_parses_only_the_statements_that_change(monkeypatch):
    parsed = []
    real = cst.parse_module
    monkeypatch.setattr(
        cst,
        "parse_module",
        lambda code, *a, **k: parsed.append(code) or real(code, *a, **k),
    )
    body = "".join(f"v{i} = {i}\n" for i in range(200))
    src = f"import os\n{body}def f():\n    return bar(1) + 2\n{body}"
    result = transform(src, Settings(), rules=[RenameBar])
    assert result.source == src.replace("bar(1)", "baz(1)")
    assert parsed == ["if 1:\n    return bar(1) + 2"]  # the one statement, inside `if 1:` for its indentation


def test_edits_of_two_rules_compose_on_one_node():
    class Upper(Rule):
        id = "test-upper"
        summary = "test"
        triggers = ("bar",)

        def check(self, ctx):
            for call in ctx.analysis.calls_by_name.get("bar", ()):
                ctx.edit(
                    call,
                    lambda n: n.with_changes(args=[*n.args, cst.Arg(cst.Integer("3"))]),
                    "extra arg",
                )

    out = run("y = bar(1)\n", RenameBar, Upper)
    assert out == "y = baz(1, 3)\n"


def test_exclusive_edits_conflict_then_fixpoint():
    """Two rules replace the same call: the first in registry order wins, the engine runs again for the other."""

    class Wrap(Rule):
        id = "test-wrap"
        summary = "test"
        triggers = ("bar", "baz")

        def check(self, ctx):
            for name in ("bar", "baz"):
                for call in ctx.analysis.calls_by_name.get(name, ()):
                    ctx.edit(
                        call,
                        lambda n: cst.Call(cst.Name("wrap"), [cst.Arg(n)]),
                        "wrap",
                        exclusive=True,
                    )

    class Swap(Rule):
        id = "test-swap"
        summary = "test"
        triggers = ("bar",)

        def check(self, ctx):
            for call in ctx.analysis.calls_by_name.get("bar", ()):
                ctx.edit(
                    call,
                    lambda n: n.with_changes(func=cst.Name("baz")),
                    "swap",
                    exclusive=True,
                )

    result = transform("y = bar(1)\n", Settings(), rules=[Swap, Wrap])
    assert result.error is None
    assert result.source == "y = wrap(baz(1))\n"
    assert [f.rule for f in result.findings] == ["test-swap", "test-wrap"]
    assert transform(result.source, Settings(), rules=[Swap, Wrap]).source == "y = wrap(wrap(baz(1)))\n"


def test_nested_edits_and_a_todo_inside_a_rendered_statement():
    src = "def f(x=bar(0)):\n    y = foo(1)\n    return bar(2)\n"
    out = run(src, RenameBar, FlagFoo)
    assert out == f"def f(x=baz(0)):\n    {TODO}\n    y = foo(1)\n    return baz(2)\n"


def test_two_rules_one_file():
    src = "x = bar(1)\ny = foo(2)\n"
    out = run(src, RenameBar, FlagFoo)
    assert out == f"x = baz(1)\n{TODO}\ny = foo(2)\n"
    result = transform(src, Settings(), rules=[RenameBar, FlagFoo])
    assert [f.rule for f in result.findings] == ["test-rename-bar", "test-flag-foo"]


def test_unchanged_source_is_returned_as_is():
    src = "x = bar  # bar( in a comment\r\n"
    result = transform(src, Settings(), rules=[RenameBar])
    assert result.source is src and not result.changed


def test_crlf_tabs_and_non_ascii_columns():
    src = "if c:\r\n\ts = 'ünïcødé'; y = bar(1)\r\n"
    out = run(src, RenameBar, FlagFoo)
    assert out == "if c:\r\n\ts = 'ünïcødé'; y = baz(1)\r\n"
    result = transform(src, Settings(), rules=[RenameBar])
    assert result.findings[0].col == 20  # characters, not UTF-8 bytes (24)


def test_parse_error_reported():
    result = transform("x = bar(\n", Settings(), rules=[RenameBar])
    assert result.error and result.error.startswith("parse error") and result.source == "x = bar(\n"


def test_result_unpacks_to_source_and_findings():
    new, findings = transform("b = bar(2)\n", Settings(), rules=[RenameBar])
    assert new == "b = baz(2)\n" and [f.rule for f in findings] == ["test-rename-bar"]


class DropLastBar(Rule):
    """Drops the `y=` keyword of `bar(...)` calls (an edit of the call, reported at the keyword); from transformers
    4.56 only (a per-rewrite gate), and inserts a counted line above each such statement."""

    id = "test-drop-y"
    summary = "test"
    triggers = ("bar",)
    item_gates = ("dtype_kwarg",)

    def check(self, ctx):
        from codemods.cstutil import without_args

        for call in ctx.analysis.calls_by_name.get("bar", ()):
            kw = next((k for k in call.keywords if k.arg == "y"), None)
            if kw is None or not ctx.target_meets("dtype_kwarg"):
                continue
            ctx.edit(
                call,
                lambda c: c.with_changes(
                    args=without_args(c.args, {i for i, a in enumerate(c.args) if a.keyword and a.keyword.value == "y"})
                ),
                "y= dropped",
                at=kw,
            )
            ctx.insert_before(ctx.analysis.statement_of(call), "# y was here", "marker", at=call)


def test_dropping_the_last_argument_keeps_the_closing_line():
    src = "z = bar(\n    1, x=2, y=3\n)\nw = bar(1, y=3)\nv = bar(\n    1,\n    y=3,\n)\n"
    out = run(src, DropLastBar)
    assert out == "# y was here\nz = bar(\n    1, x=2\n)\n# y was here\nw = bar(1)\n# y was here\nv = bar(\n    1,\n)\n"


def test_edit_reported_at_another_node_and_counted_inserts():
    result = transform("w = bar(1, y=3)\n", Settings(), rules=[DropLastBar])
    assert [(f.kind, f.line, f.col, f.message) for f in result.findings] == [
        ("rewrite", 1, 4, "marker"),
        ("rewrite", 1, 11, "y= dropped"),
    ]


def test_item_gates_are_per_rewrite_listed_and_resolved():
    src = "w = bar(1, y=3)\n"
    assert DropLastBar.enabled(Settings(targets={"transformers": "4.40"}))  # the rule runs on both sides...
    assert run(src, DropLastBar, targets={"transformers": "4.40"}) == src  # ...and the rewrite checks its gate
    assert run(src, DropLastBar, targets={"transformers": "4.56"}) == "# y was here\nw = bar(1)\n"
    assert DropLastBar.target_packages() == ("transformers",)  # the CLI resolves a target for it

    class Undeclared(DropLastBar):
        item_gates = ()

    result = transform(src, Settings(), rules=[Undeclared])  # a rule bug is reported for the file, not raised
    assert result.error and "gate 'dtype_kwarg' is not declared" in result.error and result.source == src


def test_list_rules_shows_per_rewrite_gates():
    import io

    from codemods.cli import _list_rules

    out = io.StringIO()
    _list_rules(Settings(), out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("transformers-training-args "))
    assert "per rewrite: " in line and "warmup_steps_fraction" in line and "train_sampling_strategy" in line


def test_todo_never_longer_than_the_limit():
    class Wordy(Rule):
        id = "test-wordy-rule-with-a-long-anchor-name"
        summary = "test"
        triggers = ("qux",)

        def check(self, ctx):
            for call in ctx.analysis.calls_by_name.get("qux", ()):
                ctx.diagnose(call, "a very long explanation " * 8, "still a rather long explanation " * 3)

    out = run("qux(1)\n", Wordy, add_todos=True)
    todo = out.splitlines()[0]
    assert (
        len(todo) <= 120
        and todo.startswith("# TODO(compat): still a rather long")
        and " [...]; see MIGRATION.md#" in todo
    )


class AddParam(Rule):
    """`def f(...)` gets a parameter `z=None` (a header edit), `bar(...)` -> `baz(...)` inside it."""

    id = "test-add-param"
    summary = "test"
    triggers = ("def",)

    def check(self, ctx):
        import codemods.cstutil as cu

        for fn in ctx.analysis.functions.get("f", ()):
            if any(a.arg == "z" for a in fn.args.args):
                continue
            ctx.edit(
                fn,
                lambda d: d.with_changes(
                    params=d.params.with_changes(
                        params=[*d.params.params, cst.Param(cst.Name("z"), default=cst.Name("None"), equal=cu.NO_SPACE)]
                    )
                ),
                "z=None",
                cst_type=cst.FunctionDef,
                header=True,
            )
        for call in ctx.analysis.calls_by_name.get("bar", ()):
            ctx.edit(call.func, lambda n: n.with_changes(value="baz"), "bar -> baz")


def test_header_edits_render_only_the_header(monkeypatch):
    src = (
        "class C:\n"
        "    @decorate\n"
        "    def f(self, a: int,\n          b=2) -> int:  # keep\n"
        "        # the body\n"
        "        x = bar(a)\n"
        "        return x + b\n\n"
        "def f(): return bar(1)\n"
    )
    seen = []
    real = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda code, *a, **k: seen.append(code) or real(code, *a, **k))
    out = run(src, AddParam)
    assert out == (
        "class C:\n"
        "    @decorate\n"
        "    def f(self, a: int,\n          b=2, z=None) -> int:  # keep\n"
        "        # the body\n"
        "        x = baz(a)\n"
        "        return x + b\n\n"
        "def f(z=None): return baz(1)\n"  # a one-line def is rendered whole
    )
    header = next(code for code in seen if "@decorate" in code)
    assert "return x + b" not in header and header.rstrip().endswith("pass")


def test_an_edit_in_a_header_renders_only_the_header(monkeypatch):
    parsed = []
    real = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda code, *a, **k: parsed.append(code) or real(code, *a, **k))
    body = "".join(f"    v{i} = {i}\n" for i in range(50))
    src = f"if bar(1):\n{body}elif bar(2):\n{body}else:\n    pass\nwith bar(3) as b:\n{body}"
    result = transform(src, Settings(), rules=[RenameBar])
    assert result.error is None and result.source == src.replace("bar(", "baz(")
    # an `elif` does not parse alone: it renders with its `if`; the `with` renders as its header only
    assert [code.split("\n", 1)[0] for code in parsed] == ["if bar(1):", "with bar(3) as b:"]
    assert parsed[1] == "with bar(3) as b:\n    pass\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("f(a, b=1, c=2,\n  d=3)", "f(a,\n  d=3)"),  # the line break after the dropped run stays
        ("f(\n    a,  # about a\n    b=1,\n    d=3,\n)", "f(\n    a,  # about a\n    d=3,\n)"),  # a's comment stays
        ("f(\n    a,\n    b=1,\n)", "f(\n    a,\n)"),  # the last run goes: the closing line stays
        ("f(a, b=1)", "f(a)"),
    ],
)
def test_dropping_arguments_keeps_line_breaks_and_comments(source, expected):
    from codemods import cstutil

    call = cst.parse_expression(source)
    assert isinstance(call, cst.Call)
    new = call.with_changes(args=cstutil.without_keywords(call.args, {"b", "c"}))
    assert cst.Module(body=[]).code_for_node(new) == expected
