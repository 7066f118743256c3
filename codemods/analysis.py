"""What the names of one file mean, from Python's own `ast` (C parser; no libcst metadata).

`FileAnalysis(source, tree)` walks the tree once: parent links and indexes of the nodes rules look for (calls by
callee name, keywords, attributes, string keys, functions, classes). Scopes and *flow-sensitive* reaching bindings
are computed per scope on first use: what a name can be at a given load follows the assignments that reach that
point (straight-line code, if/else, loops, try, with, match), so

    model = LlamaForCausalLM.from_pretrained(...)
    model.gradient_checkpointing_enable()      # here `model` can only be the transformers model
    model = torch.compile(get_peft_model(model, cfg))

Names read in a function but bound outside it (globals, closures) resolve to every binding of the enclosing scope
(the function may run at any time). This module knows nothing about transformers: see `codemods.kinds`.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Binding", "FileAnalysis", "Scope", "dotted_name", "string_value"]

_SCOPE_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_NEWLINE = re.compile(r"\r\n|\r|\n")  # what ends a line for the tokenizer (not \f, \v... as in str.splitlines)
_CONTEXTS = (ast.Load, ast.Store, ast.Del)  # shared singletons: no parent of their own
# Field values that are not nodes to index: scalars, and the context/operator singletons ast shares between nodes.
_LEAVES = frozenset(
    {type(None), str, int, bool, *_CONTEXTS}
    | {cls for base in (ast.operator, ast.unaryop, ast.cmpop, ast.boolop) for cls in base.__subclasses__()}
)
_POSITION = operator.attrgetter("lineno", "col_offset")  # every indexed node has both


def dotted_name(node: ast.AST | None) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def string_value(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


@dataclass(eq=False)
class Binding:
    """One place that binds `name` in a scope.

    kind: "import" (`qname` set: `import a.b as c` -> "a.b"; `from a import b` -> "a.b"), "assign" (`value` set;
    `path` the index path into a tuple target, `()` for a plain `x = value`), "annassign", "augassign", "walrus",
    "param" (`node` the ast.arg), "def", "class" (`node` the def), "for", "with", "except", "comprehension",
    "match", "global" (bound in another scope through a `global` declaration), "star" (a star import: `qname` the
    module), "del".
    """

    name: str
    kind: str
    node: ast.AST
    scope: Scope
    value: ast.AST | None = None
    path: tuple[int, ...] = ()
    qname: str | None = None
    statement: ast.AST | None = None  # the statement that binds (an Assign, an ImportFrom, ...)

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 0)


@dataclass(eq=False)
class Scope:
    kind: str  # "module" | "function" | "class" | "lambda" | "comprehension"
    node: ast.AST
    parent: Scope | None
    locals: set[str] = field(default_factory=set)
    global_names: set[str] = field(default_factory=set)
    nonlocal_names: set[str] = field(default_factory=set)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)  # every binding, in source order
    star_imports: list[str] = field(default_factory=list)

    def add(self, binding: Binding) -> None:
        self.bindings.setdefault(binding.name, []).append(binding)

    @property
    def function(self) -> Scope:
        """The nearest enclosing scope that is not a class or comprehension body (where a walrus binds)."""
        scope: Scope = self
        while scope.kind in ("comprehension",) and scope.parent is not None:
            scope = scope.parent
        return scope


_BOTTOM = None  # an unreachable point: `return`, `raise`, `break`, `continue` just happened


def _join(*envs: dict | None) -> dict | None:
    live = [e for e in envs if e is not None]
    if not live:
        return None
    if len(live) == 1:
        return dict(live[0])
    out: dict[str, frozenset] = {}
    for env in live:
        for name, value in env.items():
            out[name] = out[name] | value if name in out else value
    return out


class FileAnalysis:
    """One file's ast with parents, indexes, scopes and reaching bindings. Build it once per file; rules share it."""

    def __init__(self, source: str, tree: ast.Module) -> None:
        self.source = source
        self.tree = tree
        self._line_starts: list[int] | None = None
        self.has_walrus = ":=" in source
        # indexes (source order)
        self.calls: list[ast.Call] = []
        self.calls_by_attr: dict[str, list[ast.Call]] = {}  # `x.NAME(...)`
        self.calls_by_name: dict[str, list[ast.Call]] = {}  # `NAME(...)`
        self.keywords: dict[str, list[ast.keyword]] = {}  # `f(NAME=...)`
        self.attributes: dict[str, list[ast.Attribute]] = {}  # `x.NAME` (any context)
        self.names: dict[str, list[ast.Name]] = {}  # every Name node by identifier
        self.strings: dict[str, list[ast.Constant]] = {}  # string constants by value (dict keys, subscripts...)
        self.functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
        self.classes: list[ast.ClassDef] = []
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self._scope_of_node: dict[int, Scope] = {}
        self._reach: dict[int, frozenset[Binding]] = {}
        self._walked: set[int] = set()
        self._index()

    # ------------------------------------------------------------------------------------------ indexing
    def _index(self) -> None:
        calls, by_attr, by_name, keywords = (
            self.calls,
            self.calls_by_attr,
            self.calls_by_name,
            self.keywords,
        )
        attributes, names, strings = self.attributes, self.names, self.strings
        Name, Call, Attribute, keyword, Constant = (
            ast.Name,
            ast.Call,
            ast.Attribute,
            ast.keyword,
            ast.Constant,
        )
        stack: list[ast.AST] = [self.tree]
        self.tree._parent = None  # type: ignore[attr-defined]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is Name:
                names.setdefault(node.id, []).append(node)
                continue
            if kind is Constant:
                if type(node.value) is str and len(node.value) < 80:
                    strings.setdefault(node.value, []).append(node)
                continue
            if kind is Call:
                calls.append(node)
                func = node.func
                if type(func) is Attribute:
                    by_attr.setdefault(func.attr, []).append(node)
                elif type(func) is Name:
                    by_name.setdefault(func.id, []).append(node)
            elif kind is keyword:
                if node.arg is not None:
                    keywords.setdefault(node.arg, []).append(node)
            elif kind is Attribute:
                attributes.setdefault(node.attr, []).append(node)
            elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
                self.functions.setdefault(node.name, []).append(node)
            elif kind is ast.ClassDef:
                self.classes.append(node)
            elif kind is ast.Import or kind is ast.ImportFrom:
                self.imports.append(node)
            for name in node._fields:  # ast.iter_child_nodes, inlined: this loop runs for every node of the file
                value = getattr(node, name, None)
                kind = type(value)
                if kind is list:
                    for item in value:
                        if type(item) not in _LEAVES:
                            item._parent = node  # type: ignore[attr-defined]
                            stack.append(item)
                elif kind not in _LEAVES:
                    value._parent = node  # type: ignore[attr-defined]
                    stack.append(value)
        calls.sort(key=_position)
        for table in (
            by_attr,
            by_name,
            keywords,
            attributes,
            names,
            strings,
            self.functions,
        ):
            for value in table.values():
                value.sort(key=_position)
        self.classes.sort(key=_position)
        self.imports.sort(key=_position)

    # ------------------------------------------------------------------------------------------ tree helpers
    @staticmethod
    def parent(node: ast.AST) -> ast.AST | None:
        return getattr(node, "_parent", None)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        current = getattr(node, "_parent", None)
        while current is not None:
            yield current
            current = getattr(current, "_parent", None)

    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        """The innermost statement containing `node` (the node itself if it is one)."""
        current: ast.AST | None = node
        while current is not None and not isinstance(current, ast.stmt):
            current = getattr(current, "_parent", None)
        return current  # type: ignore[return-value]

    def enclosing(self, node: ast.AST, types) -> ast.AST | None:
        for anc in self.ancestors(node):
            if isinstance(anc, types):
                return anc
        return None

    def enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        """The class whose body (directly, or through a method) holds `node`."""
        for anc in self.ancestors(node):
            if isinstance(anc, ast.ClassDef):
                return anc
        return None

    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        for anc in self.ancestors(node):
            if isinstance(anc, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return anc
        return None

    def in_fstring(self, node: ast.AST) -> bool:
        return any(isinstance(a, ast.JoinedStr) for a in self.ancestors(node))

    def call_of_keyword(self, kw: ast.keyword) -> ast.Call | None:
        parent = getattr(kw, "_parent", None)
        return parent if isinstance(parent, ast.Call) else None

    def block_of(self, stmt: ast.stmt) -> list[ast.stmt]:
        """The statements of the block `stmt` stands in (the module's, a body, an else or finally block)."""
        parent = self.parent(stmt)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(parent, name, None)
            if isinstance(block, list) and stmt in block:
                return block
        return [stmt]

    def shares_line(self, stmt: ast.stmt) -> bool:
        """Another statement of the same block stands on a line of `stmt` (`import a; x = 1`)."""
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        return any(
            s is not stmt and s.lineno <= last and (s.end_lineno or s.lineno) >= first for s in self.block_of(stmt)
        )

    def absolute_imports(self) -> Iterator[ast.ImportFrom | ast.alias]:
        """In source order: each `from <module> import ...` with an absolute module, and each name of an
        `import a.b, c` statement."""
        for stmt in self.imports:
            if isinstance(stmt, ast.ImportFrom):
                if not stmt.level and stmt.module:
                    yield stmt
            else:
                yield from stmt.names

    def calls_passing(self, names: Iterable[str]) -> list[ast.Call]:
        """The calls with a keyword among `names` (in the order of `names`, then of the source), then every other call
        that unpacks a name (`f(**kw)`, where a dict flow may carry one of them), each once."""
        found: dict[int, ast.Call] = {}
        for name in names:
            for kw in self.keywords.get(name, ()):
                call = self.call_of_keyword(kw)
                if call is not None:
                    found.setdefault(id(call), call)
        for call in self.calls:
            if any(k.arg is None and isinstance(k.value, ast.Name) for k in call.keywords):
                found.setdefault(id(call), call)
        return list(found.values())

    def segment(self, node: ast.AST) -> str:
        """The exact source text of a node (ast.get_source_segment without re-splitting the file each time)."""
        start = self._offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self._offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return self.source[start:end]

    def text(self, node: ast.AST) -> str:
        """The source text of a node (one normalised line)."""
        return " ".join(self.segment(node).split())

    def _offset(self, lineno: int, byte_col: int) -> int:
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in _NEWLINE.finditer(self.source)]
        start = self._line_starts[lineno - 1]
        end = self._line_starts[lineno] if lineno < len(self._line_starts) else len(self.source)
        line = self.source[start:end]
        if line.isascii():
            return start + byte_col
        return start + len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))

    # ------------------------------------------------------------------------------------------ scopes
    def scope_of(self, node: ast.AST) -> Scope:
        """The scope in which `node` (an expression or statement) is evaluated."""
        child: ast.AST = node
        current = getattr(node, "_parent", None)
        while current is not None:
            if isinstance(current, _FUNCTIONS):
                # defaults, annotations and decorators are evaluated in the enclosing scope; params and body inside
                if isinstance(child, ast.arguments):
                    if isinstance(node, ast.arg):
                        return self._scope(current)
                elif child in getattr(current, "decorator_list", ()) or child is getattr(current, "returns", None):
                    pass
                else:
                    return self._scope(current)
            elif isinstance(current, ast.ClassDef):
                if child in current.body:
                    return self._scope(current)
            elif isinstance(current, _COMPREHENSIONS):
                first = current.generators[0]
                if child is not first or not _contains(first.iter, node):
                    return self._scope(current)
            elif isinstance(current, ast.Module):
                return self._scope(current)
            child, current = current, getattr(current, "_parent", None)
        return self._scope(self.tree)

    def _scope(self, node: ast.AST) -> Scope:
        scope = self._scope_of_node.get(id(node))
        if scope is None:
            scope = self._build_scope(node)
        return scope

    def _build_scope(self, node: ast.AST) -> Scope:
        if isinstance(node, ast.Module):
            parent = None
            kind = "module"
        else:
            parent = self.scope_of(node)
            kind = {ast.ClassDef: "class", ast.Lambda: "lambda"}.get(type(node), "function")
            if isinstance(node, _COMPREHENSIONS):
                kind = "comprehension"
        scope = Scope(kind, node, parent)
        self._scope_of_node[id(node)] = scope
        _Collector(self, scope).collect()
        return scope

    def module_scope(self) -> Scope:
        return self._scope(self.tree)

    # ------------------------------------------------------------------------------------------ resolution
    def reaching(self, name: ast.Name) -> tuple[Binding, ...]:
        """The bindings that can reach this load of a name (source order). Empty: unbound here (a builtin, a star
        import, or a NameError)."""
        scope = self.scope_of(name)
        return self.resolve(name.id, scope, name)

    def resolve(self, identifier: str, scope: Scope, at: ast.AST | None = None) -> tuple[Binding, ...]:
        """Bindings of `identifier` as seen from `scope` (flow-sensitively at the load `at` when it is local)."""
        if identifier in scope.global_names:
            return tuple(self.module_scope().bindings.get(identifier, ()))
        if identifier in scope.locals and identifier not in scope.nonlocal_names:
            if at is None or scope.kind == "comprehension":
                return tuple(scope.bindings.get(identifier, ()))
            self._walk(scope)
            found = self._reach.get(id(at))
            if found:
                return _ordered(found)
            if found is None:  # not a load the walk saw (e.g. a store): every binding
                return tuple(scope.bindings.get(identifier, ()))
            if scope.kind != "class":
                return ()  # read before any assignment on every path
            # a class body that reads a name before binding it reads the enclosing scope
        parent = scope.parent
        if scope.kind in ("class", "comprehension") and parent is not None and at is not None:
            # these bodies run where they stand: what the enclosing scope holds at that point
            if (
                parent.kind in ("module", "function", "lambda")
                and identifier in parent.locals
                and identifier not in parent.global_names
            ):
                self._walk(parent)
                found = self._reach.get((id(scope.node), identifier))  # type: ignore[call-overload]
                if found is not None:
                    return _ordered(found)
            return self.resolve(identifier, parent, None)
        # a free name: the nearest enclosing function/module scope that binds it (class bodies are skipped); the
        # function may run at any time, so every binding there counts
        while parent is not None:
            if parent.kind != "class" and identifier in parent.locals:
                return tuple(parent.bindings.get(identifier, ()))
            if identifier in parent.global_names:
                return tuple(self.module_scope().bindings.get(identifier, ()))
            parent = parent.parent
        return ()

    def _walk(self, scope: Scope) -> None:
        if id(scope.node) in self._walked:
            return
        self._walked.add(id(scope.node))
        _Flow(self, scope).run()

    def binding_for(self, node: ast.AST) -> Binding | None:
        """The binding that `node` creates (an ast.alias of an import, a Name target, an ast.arg, a def/class)."""
        stmt = node if isinstance(node, ast.stmt) else self.statement_of(node)
        scopes = [self.scope_of(node if isinstance(node, ast.arg) else stmt)] if stmt is not None else []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scopes = [self.scope_of(node)]
        scopes.append(self.module_scope())
        for scope in scopes:
            for bindings in scope.bindings.values():
                for b in bindings:
                    if b.node is node:
                        return b
        return None

    def bindings_of(self, identifier: str, scope: Scope | None = None) -> list[Binding]:
        scope = scope or self.module_scope()
        return list(scope.bindings.get(identifier, ()))

    def loads(self, binding: Binding) -> list[ast.Name]:
        """Every load of the binding's name that this binding can reach (in its scope and nested scopes)."""
        out = []
        for node in self.names.get(binding.name, ()):
            if isinstance(node.ctx, ast.Load) and binding in self.reaching(node):
                out.append(node)
        return out

    def qualified_name(self, node: ast.AST) -> str | None:
        """The imported qualified name a Name/Attribute chain refers to, when every binding that reaches its head
        is the same import: `tf.AutoModel` with `import transformers as tf` -> "transformers.AutoModel"."""
        if isinstance(node, ast.Attribute):
            base = self.qualified_name(node.value)
            return f"{base}.{node.attr}" if base else None
        if not isinstance(node, ast.Name):
            return None
        found = self.reaching(node)
        if not found:
            return None
        qnames = {b.qname if b.kind == "import" else None for b in found}
        if len(qnames) == 1:
            return next(iter(qnames))
        return None

    def star_module(self, name: ast.Name) -> str | None:
        """`from m import *` in the module (or the name's scope) and nothing else binds the name: the module."""
        if self.reaching(name):
            return None
        scope: Scope | None = self.scope_of(name)
        while scope is not None:
            if scope.star_imports:
                return scope.star_imports[0] if len(scope.star_imports) == 1 else None
            scope = scope.parent
        return None


def _position(node: ast.AST) -> tuple[int, int]:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _ordered(bindings: Iterable[Binding]) -> tuple[Binding, ...]:
    return tuple(sorted(bindings, key=lambda b: (_position(b.node), b.kind)))


def _contains(outer: ast.AST, node: ast.AST) -> bool:
    current: ast.AST | None = node
    while current is not None:
        if current is outer:
            return True
        current = getattr(current, "_parent", None)
    return False


# ---------------------------------------------------------------------------------------------- scope collection
class _Collector:
    """Which names a scope binds (Python's rule: any binding anywhere in the body makes a name local)."""

    def __init__(self, analysis: FileAnalysis, scope: Scope) -> None:
        self.analysis = analysis
        self.scope = scope

    def collect(self) -> None:
        node = self.scope.node
        scope = self.scope
        if isinstance(node, _FUNCTIONS):
            args = node.args
            for a in [
                *args.posonlyargs,
                *args.args,
                *args.kwonlyargs,
                args.vararg,
                args.kwarg,
            ]:
                if a is not None:
                    scope.locals.add(a.arg)
                    scope.add(Binding(a.arg, "param", a, scope, statement=node))
            body = node.body if isinstance(node.body, list) else [node.body]
        elif isinstance(node, _COMPREHENSIONS):
            for gen in node.generators:
                self._targets(gen.target, "comprehension", None, gen)
            body = []
            for gen in node.generators:
                body.extend(gen.ifs)
                if gen is not node.generators[0]:
                    body.append(gen.iter)
            body.extend([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])
            for expr in body:
                self._expression(expr)
            return
        else:
            body = node.body
        for stmt in body:
            self._statement(stmt) if isinstance(stmt, ast.stmt) else self._expression(stmt)

    def _bind(self, name: str, kind: str, node: ast.AST, **kw) -> None:
        scope = self.scope
        if name in scope.global_names:
            module = self.analysis.module_scope() if scope.kind != "module" else scope
            module.locals.add(name)
            module.add(Binding(name, kind, node, module, **kw))
            return
        scope.locals.add(name)
        scope.add(Binding(name, kind, node, scope, **kw))

    def _targets(
        self,
        target: ast.AST,
        kind: str,
        value: ast.AST | None,
        statement: ast.AST,
        path=(),
    ) -> None:
        if isinstance(target, ast.Name):
            self._bind(target.id, kind, target, value=value, path=path, statement=statement)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for i, el in enumerate(target.elts):
                self._targets(el, kind, value, statement, (*path, i))
        elif isinstance(target, ast.Starred):
            self._targets(target.value, kind, None, statement, path)
        else:
            self._expression(target)

    def _statement(self, stmt: ast.stmt) -> None:
        kind = type(stmt)
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            self._bind(
                stmt.name,
                "class" if kind is ast.ClassDef else "def",
                stmt,
                statement=stmt,
            )
            for d in stmt.decorator_list:
                self._expression(d)
            if kind is ast.ClassDef:
                for b in [*stmt.bases, *(k.value for k in stmt.keywords)]:
                    self._expression(b)
            else:
                args = stmt.args
                for d in [*args.defaults, *args.kw_defaults]:
                    if d is not None:
                        self._expression(d)
            return
        if kind is ast.Global:
            self.scope.global_names.update(stmt.names)
            return
        if kind is ast.Nonlocal:
            self.scope.nonlocal_names.update(stmt.names)
            return
        if kind is ast.Import:
            for alias in stmt.names:
                if alias.asname:
                    self._bind(alias.asname, "import", alias, qname=alias.name, statement=stmt)
                else:
                    head = alias.name.split(".", 1)[0]
                    self._bind(head, "import", alias, qname=head, statement=stmt)
            return
        if kind is ast.ImportFrom:
            module = stmt.module or ""
            if stmt.level:
                module = "." * stmt.level + module
            for alias in stmt.names:
                if alias.name == "*":
                    self.scope.star_imports.append(module)
                    continue
                local = alias.asname or alias.name
                self._bind(local, "import", alias, qname=f"{module}.{alias.name}" if module else alias.name,
                           statement=stmt)  # fmt: skip
            return
        if kind is ast.Assign:
            for t in stmt.targets:
                self._targets(t, "assign", stmt.value, stmt)
            self._expression(stmt.value)
            return
        if kind is ast.AnnAssign:
            if isinstance(stmt.target, ast.Name):
                if stmt.value is not None:
                    self._bind(
                        stmt.target.id,
                        "annassign",
                        stmt.target,
                        value=stmt.value,
                        statement=stmt,
                    )
                else:
                    self.scope.locals.add(stmt.target.id)
            else:
                self._expression(stmt.target)
            if stmt.value is not None:
                self._expression(stmt.value)
            return
        if kind is ast.AugAssign:
            if isinstance(stmt.target, ast.Name):
                self._bind(
                    stmt.target.id,
                    "augassign",
                    stmt.target,
                    value=stmt.value,
                    statement=stmt,
                )
            self._expression(stmt.value)
            return
        if kind in (ast.For, ast.AsyncFor):
            self._targets(stmt.target, "for", None, stmt)
        elif kind in (ast.With, ast.AsyncWith):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self._targets(item.optional_vars, "with", item.context_expr, stmt)
        elif kind is ast.Try or kind.__name__ == "TryStar":
            for h in stmt.handlers:
                if h.name:
                    self._bind(h.name, "except", h, statement=h)
        elif kind is ast.Delete:
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    self.scope.locals.add(t.id)
        elif kind.__name__ == "Match":
            for case in stmt.cases:
                for node in ast.walk(case.pattern):
                    name = getattr(node, "name", None) if not isinstance(node, ast.MatchClass) else None
                    if isinstance(name, str):
                        self._bind(name, "match", node, statement=stmt)
                    rest = getattr(node, "rest", None)
                    if isinstance(rest, str):
                        self._bind(rest, "match", node, statement=stmt)
        for field_name, value in ast.iter_fields(stmt):
            if field_name in ("body", "orelse", "finalbody"):
                for s in value:
                    self._statement(s)
            elif field_name == "handlers":
                for h in value:
                    for s in h.body:
                        self._statement(s)
                    if h.type is not None:
                        self._expression(h.type)
            elif field_name == "cases":
                for case in value:
                    if case.guard is not None:
                        self._expression(case.guard)
                    for s in case.body:
                        self._statement(s)
            elif isinstance(value, ast.expr):
                self._expression(value)
            elif isinstance(value, list):
                for v in value:
                    if isinstance(v, ast.expr):
                        self._expression(v)
                    elif isinstance(v, ast.withitem):
                        self._expression(v.context_expr)

    def _expression(self, expr: ast.AST | None) -> None:
        """Walrus targets inside an expression bind in this scope (not in nested lambdas/comprehensions: there they
        bind in the enclosing function, which is this scope when comprehensions are nested directly)."""
        if expr is None or not self.analysis.has_walrus:
            return
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                target_scope = self.scope
                if target_scope.kind == "comprehension":
                    target_scope = target_scope.function
                self._bind_in(target_scope, node.target.id, node)
            if isinstance(node, ast.Lambda):
                continue
            if isinstance(node, _COMPREHENSIONS):
                # walrus in a comprehension binds in the enclosing (this) scope
                for sub in ast.walk(node):
                    if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                        self._bind_in(self.scope, sub.target.id, sub)
                stack.append(node.generators[0].iter)
                continue
            stack.extend(ast.iter_child_nodes(node))

    def _bind_in(self, scope: Scope, name: str, node: ast.NamedExpr) -> None:
        if any(b.node is node for b in scope.bindings.get(name, ())):
            return
        scope.locals.add(name)
        scope.add(Binding(name, "walrus", node.target, scope, value=node.value, statement=node))


# ---------------------------------------------------------------------------------------------- flow
class _Flow:
    """Abstract interpretation of one scope's body in program order: env maps each local name to the bindings that
    may hold at this point; every load of a local name records that set."""

    def __init__(self, analysis: FileAnalysis, scope: Scope) -> None:
        self.a = analysis
        self.scope = scope
        self.by_node: dict[int, Binding] = {}
        for bindings in scope.bindings.values():
            for b in bindings:
                self.by_node[id(b.node)] = b
        self.loops: list[tuple[list, list]] = []  # (break envs, continue envs)
        self.try_states: list[list] = []

    def run(self) -> None:
        node = self.scope.node
        env: dict | None = {}
        if isinstance(node, _FUNCTIONS):
            for bindings in self.scope.bindings.values():
                params = frozenset(b for b in bindings if b.kind == "param")
                if params:
                    env[bindings[0].name] = params
            if isinstance(node, ast.Lambda):
                self.expr(node.body, env)
                return
        self.block(node.body, env)

    # -- statements
    def block(self, stmts: list[ast.stmt], env: dict | None) -> dict | None:
        for stmt in stmts:
            if env is None:
                return None
            env = self.stmt(stmt, env)
            if self.try_states and env is not None:
                self.try_states[-1].append(dict(env))  # a copy: later statements update env in place
        return env

    def bind(self, target: ast.AST, env: dict) -> None:
        if isinstance(target, ast.Name):
            b = self.by_node.get(id(target))
            if b is not None and target.id in self.scope.locals and target.id not in self.scope.global_names:
                env[target.id] = frozenset((b,))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for el in target.elts:
                self.bind(el, env)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, env)
        else:
            self.expr(target, env)  # attribute/subscript targets: their parts are loads

    def bind_node(self, node: ast.AST, name: str, env: dict) -> None:
        b = self.by_node.get(id(node))
        if b is not None and name not in self.scope.global_names:
            env[name] = frozenset((b,))

    def stmt(self, stmt: ast.stmt, env: dict) -> dict | None:
        kind = type(stmt)
        if kind is ast.Expr:
            self.expr(stmt.value, env)
            return env
        if kind is ast.Assign:
            self.expr(stmt.value, env)
            for t in stmt.targets:
                self.bind(t, env)
            return env
        if kind is ast.AnnAssign:
            if stmt.value is not None:
                self.expr(stmt.value, env)
            if self.scope.kind != "function":
                self.expr(stmt.annotation, env)
            if isinstance(stmt.target, ast.Name):
                if stmt.value is not None:
                    self.bind(stmt.target, env)
            else:
                self.expr(stmt.target, env)
            return env
        if kind is ast.AugAssign:
            if isinstance(stmt.target, ast.Name):
                self.load(stmt.target, env)
            self.expr(stmt.value, env)
            self.bind(stmt.target, env)
            return env
        if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            for d in stmt.decorator_list:
                self.expr(d, env)
            if kind is ast.ClassDef:
                for b in [*stmt.bases, *(k.value for k in stmt.keywords)]:
                    self.expr(b, env)
                self._class_body(stmt, env)
            else:
                args = stmt.args
                for d in [*args.defaults, *args.kw_defaults]:
                    if d is not None:
                        self.expr(d, env)
                for a in [
                    *args.posonlyargs,
                    *args.args,
                    *args.kwonlyargs,
                    args.vararg,
                    args.kwarg,
                ]:
                    if a is not None and a.annotation is not None:
                        self.expr(a.annotation, env)
                if stmt.returns is not None:
                    self.expr(stmt.returns, env)
            self.bind_node(stmt, stmt.name, env)
            return env
        if kind in (ast.Return,):
            if stmt.value is not None:
                self.expr(stmt.value, env)
            return None
        if kind is ast.Raise:
            for part in (stmt.exc, stmt.cause):
                if part is not None:
                    self.expr(part, env)
            return None
        if kind is ast.Break:
            if self.loops:
                self.loops[-1][0].append(env)
            return None
        if kind is ast.Continue:
            if self.loops:
                self.loops[-1][1].append(env)
            return None
        if kind is ast.If:
            self.expr(stmt.test, env)
            return _join(self.block(stmt.body, dict(env)), self.block(stmt.orelse, dict(env)))
        if kind in (ast.For, ast.AsyncFor):
            self.expr(stmt.iter, env)
            return self._loop(stmt, env, stmt.target)
        if kind is ast.While:
            self.expr(stmt.test, env)
            return self._loop(stmt, env, None)
        if kind in (ast.With, ast.AsyncWith):
            for item in stmt.items:
                self.expr(item.context_expr, env)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, env)
            return self.block(stmt.body, env)
        if kind is ast.Try or kind.__name__ == "TryStar":
            return self._try(stmt, env)
        if kind is ast.Import or kind is ast.ImportFrom:
            for alias in stmt.names:
                if alias.name == "*":
                    continue
                local = alias.asname or (alias.name.split(".", 1)[0] if kind is ast.Import else alias.name)
                self.bind_node(alias, local, env)
            return env
        if kind is ast.Delete:
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    env[t.id] = frozenset()
                else:
                    self.expr(t, env)
            return env
        if kind.__name__ == "Match":
            self.expr(stmt.subject, env)
            outs = []
            for case in stmt.cases:
                case_env = dict(env)
                for node in ast.walk(case.pattern):
                    name = getattr(node, "name", None) if not isinstance(node, ast.MatchClass) else None
                    if isinstance(name, str):
                        self.bind_node(node, name, case_env)
                    if isinstance(node, ast.MatchValue):
                        self.expr(node.value, case_env)
                if case.guard is not None:
                    self.expr(case.guard, case_env)
                outs.append(self.block(case.body, case_env))
            return _join(env, *outs)
        # Assert, Global, Nonlocal, Pass, and anything else: its expressions are loads
        for value in ast.iter_child_nodes(stmt):
            if isinstance(value, ast.expr):
                self.expr(value, env)
        return env

    def _class_body(self, cls: ast.ClassDef, env: dict) -> None:
        """A class body runs now: the names it reads but does not bind are what this scope holds here."""
        self._record_point(cls, env)

    def _record_point(self, node: ast.AST, env: dict) -> None:
        for name, value in env.items():
            self.a._reach[id(node), name] = value  # type: ignore[index]

    def _loop(self, stmt, env: dict, target) -> dict | None:
        self.loops.append(([], []))
        start = dict(env)
        first = dict(start)
        if target is not None:
            self.bind(target, first)
        out1 = self.block(stmt.body, first)
        breaks, continues = self.loops[-1]
        again = _join(start, out1, *continues)
        assert again is not None
        second = dict(again)
        if target is not None:
            self.bind(target, second)
        if isinstance(stmt, ast.While):
            self.expr(stmt.test, second)
        out2 = self.block(stmt.body, second)
        breaks, continues = self.loops.pop()
        after = _join(start, out1, out2, *continues)
        if after is None:
            after = {}
        orelse = self.block(stmt.orelse, dict(after)) if stmt.orelse else after
        return _join(orelse, *breaks)

    def _try(self, stmt, env: dict) -> dict | None:
        self.try_states.append([dict(env)])
        body_out = self.block(stmt.body, dict(env))
        states = self.try_states.pop()
        if self.try_states:
            self.try_states[-1].extend(states)
        handler_in = _join(*states) or {}
        outs = []
        for h in stmt.handlers:
            h_env = dict(handler_in)
            if h.type is not None:
                self.expr(h.type, h_env)
            if h.name:
                self.bind_node(h, h.name, h_env)
            outs.append(self.block(h.body, h_env))
        else_out = self.block(stmt.orelse, body_out) if (stmt.orelse and body_out is not None) else body_out
        result = _join(else_out, *outs)
        if stmt.finalbody:
            # over-approximation: the finally block sees every state of the try, and what follows sees its output
            fin_out = self.block(stmt.finalbody, _join(result, handler_in) or {})
            return fin_out if result is not None else None
        return result

    # -- expressions
    def load(self, name: ast.Name, env: dict) -> None:
        if name.id not in self.scope.locals or name.id in self.scope.global_names:
            return
        found = env.get(name.id, frozenset())
        key = id(name)
        old = self.a._reach.get(key)
        self.a._reach[key] = found if old is None else old | found

    def expr(self, expr: ast.AST, env: dict) -> None:
        stack = [expr]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is ast.Name:
                if isinstance(node.ctx, ast.Load):
                    self.load(node, env)
                continue
            if kind is ast.NamedExpr:
                self.expr(node.value, env)
                if isinstance(node.target, ast.Name):
                    b = self.by_node.get(id(node.target))
                    if b is not None:
                        env[node.target.id] = frozenset((b,))
                continue
            if kind is ast.Lambda:
                args = node.args
                stack.extend(d for d in [*args.defaults, *args.kw_defaults] if d is not None)
                continue
            if kind in _COMPREHENSIONS:
                stack.append(node.generators[0].iter)
                if self.a.has_walrus:
                    self._comprehension_walrus(node, env)
                self._record_point(node, env)
                continue
            if kind is ast.IfExp:
                self.expr(node.test, env)
                left, right = dict(env), dict(env)
                self.expr(node.body, left)
                self.expr(node.orelse, right)
                joined = _join(left, right)
                env.clear()
                env.update(joined or {})
                continue
            stack.extend(reversed(list(ast.iter_child_nodes(node))))

    def _comprehension_walrus(self, node: ast.AST, env: dict) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                b = self.by_node.get(id(sub.target))
                if b is not None:
                    env[sub.target.id] = env.get(sub.target.id, frozenset()) | frozenset((b,))
