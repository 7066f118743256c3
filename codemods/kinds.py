"""What an expression is, for the rules: a class imported from transformers/trl/peft, an instance of a transformers
model, of TrainingArguments or a TRL config, of a Trainer, a tokenizer, something from another library, or unknown.

Built on `codemods.analysis` (flow-sensitive bindings), so `model` is a model exactly where the assignments that
reach that point make it one. Followed: aliases (`M = AutoModel`, `cls = A if c else B`), calls that keep or wrap
a model (`.to(...)`, `get_peft_model(m)`, `PeftModel.from_pretrained(m, ...)`, `torch.compile(m)`,
`accelerator.prepare(m)`), parameter annotations, `HfArgumentParser(...).parse_*()` unpacking, module-level
registries (`MODEL_CLASSES[name]`, also of tuples), `getattr(transformers, name)`, `self.args`/`self.model` in
Trainer subclasses, `trainer.args`/`.model`/`.tokenizer`, and the user's own subclasses of transformers/TRL classes,
in this file or (through `codemods.project`) in another file of the same project. Knows no rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codemods import hf
from codemods.analysis import Binding, FileAnalysis, string_value

if TYPE_CHECKING:  # pragma: no cover
    from codemods.project import Project

__all__ = ["ClassInfo", "Kind", "MODEL", "Resolver"]


@dataclass(eq=False)
class ClassInfo:
    """A class the user defined (in this file or another file of the project)."""

    name: str
    node: ast.ClassDef
    resolver: Resolver
    _bases: list[Kind | None] | None = field(default=None, repr=False)

    @property
    def analysis(self) -> FileAnalysis:
        return self.resolver.analysis

    @property
    def bases(self) -> list[Kind | None]:
        if self._bases is None:
            self._bases = []  # guards a cycle (`class A(A)` through a project import)
            self._bases = [self.resolver.kind_of(b) for b in self.node.bases]
        return self._bases

    @property
    def hf_base(self) -> str | None:
        """The qualified name of the transformers/trl/peft class this class derives from (through local bases)."""
        for base in self.bases:
            if base is None or base.what not in ("ref", "local"):
                continue
            if base.what == "ref" and hf.is_hf(base.qname):
                return base.qname
            if base.cls is not None and base.cls is not self:
                found = base.cls.hf_base
                if found:
                    return found
        return None

    def mro(self) -> list[ClassInfo]:
        """This class, then its user-defined bases (depth first, each once)."""
        out: list[ClassInfo] = []
        stack = [self]
        while stack:
            info = stack.pop(0)
            if info in out:
                continue
            out.append(info)
            stack.extend(b.cls for b in info.bases if b is not None and b.cls is not None)
        return out

    def own_method(self, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        for stmt in self.node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                return stmt
        return None

    def method(self, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The method as the user's classes define it (this class or a user-defined base), else None."""
        for info in self.mro():
            found = info.own_method(name)
            if found is not None:
                return found
        return None

    def class_attribute(self, name: str) -> ast.AST | None:
        """The value of `name = ...` in the class body (the last one), else None."""
        value = None
        for stmt in self.node.body:
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                value = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
                value = stmt.value
        return value


@dataclass(frozen=True)
class Kind:
    """What an expression is.

    what: "ref" (a name imported from `qname`, or a user class deriving from it: `cls`), "local" (a user class
    that derives from nothing we know), "model" (a transformers/peft model instance), "args" (TrainingArguments or a
    TRL config instance; `qname` the class), "trainer" (`qname` the class), "tokenizer", "processor", "parser"
    (HfArgumentParser/TrlParser over `classes`), "foreign" (from another library: `qname`), "instance" (of a user
    class that derives from nothing of transformers/trl/peft), "argparse" (an argparse namespace),
    "argparse_parser".
    """

    what: str
    qname: str = ""
    classes: tuple = ()
    # a user subclass overrides gradient_checkpointing_enable without **kwargs: transformers >= 5.23's
    # activation_checkpointing_enable calls such an override with every_n_layers=/offload= (TypeError)
    old_override: bool = False
    cls: ClassInfo | None = field(default=None, compare=False)
    remote_code: bool = False  # loaded with trust_remote_code: the class comes from the Hub


MODEL = Kind("model")
_CYCLE = Kind("cycle")


def unify(kinds: Iterable[Kind | None]) -> Kind | None:
    """One kind for several possibilities (the bindings that reach a name, the branches of `a if c else b`), or
    None when they disagree."""
    result: Kind | None = None
    seen = False
    for kind in kinds:
        if kind is _CYCLE:
            continue
        if kind is None:
            return None
        if not seen:
            result, seen = kind, True
        elif kind != result:
            assert result is not None
            if kind.what == result.what and kind.what in (
                "args",
                "trainer",
                "tokenizer",
                "processor",
            ):
                continue
            if kind.what == result.what == "model":
                result = Kind("model", old_override=kind.old_override or result.old_override)
                continue
            if (
                kind.what == result.what == "ref"
                and hf.is_loading_model_class(kind.qname)
                and hf.is_loading_model_class(result.qname)
            ):
                continue  # `cls = AutoModelForSeq2SeqLM if s2s else AutoModelForCausalLM`
            return None
    return result


def _old_override(cls: ast.ClassDef) -> bool:
    """The class defines gradient_checkpointing_enable without a **kwargs parameter."""
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "gradient_checkpointing_enable":
            return stmt.args.kwarg is None
    return False


class Resolver:
    """Kinds of the expressions of one file (memoised per node)."""

    def __init__(
        self,
        analysis: FileAnalysis,
        project: Project | None = None,
        path: str | None = None,
    ) -> None:
        self.analysis = analysis
        self.project = project
        self.path = path
        self._cache: dict[int, Kind | None] = {}
        self._visiting: set[int] = set()
        self._classes: dict[int, ClassInfo] = {}
        self._returns: dict[int, list[ast.AST] | None] = {}

    # ------------------------------------------------------------------------------------------ public
    def kind_of(self, expr: ast.AST | None) -> Kind | None:
        if expr is None:
            return None
        key = id(expr)
        if key in self._cache:
            return self._cache[key]
        if key in self._visiting:
            return _CYCLE
        self._visiting.add(key)
        try:
            kind = self._kind_of(expr)
        finally:
            self._visiting.discard(key)
        if kind is _CYCLE:
            kind = None
        self._cache[key] = kind
        return kind

    def ref_qname(self, expr: ast.AST) -> str | None:
        """The imported qualified name an expression refers to (through aliases), or the transformers/trl/peft base
        of a user class."""
        kind = self.kind_of(expr)
        return kind.qname if kind is not None and kind.what == "ref" else None

    def class_info(self, node: ast.ClassDef) -> ClassInfo:
        info = self._classes.get(id(node))
        if info is None:
            info = self._classes[id(node)] = ClassInfo(node.name, node, self)
        return info

    def enclosing_class_info(self, node: ast.AST) -> ClassInfo | None:
        cls = self.analysis.enclosing_class(node)
        return self.class_info(cls) if cls is not None else None

    def is_trainer_class_node(self, cls: ast.ClassDef) -> bool:
        base = self.class_info(cls).hf_base
        return base is not None and hf.is_trainer_class(base)

    def callee(self, call: ast.Call) -> Kind | None:
        return self.kind_of(call.func)

    # ------------------------------------------------------------------------------------------ dispatch
    def _kind_of(self, expr: ast.AST) -> Kind | None:
        t = type(expr)
        if t is ast.Name:
            return self._name(expr)
        if t is ast.Attribute:
            qname = self.analysis.qualified_name(expr)
            if qname is not None:
                return self._imported(qname)
            return self._attribute(expr)
        if t is ast.Call:
            return self._call(expr)
        if t is ast.IfExp:
            return unify([self.kind_of(expr.body), self.kind_of(expr.orelse)])
        if t is ast.BoolOp and isinstance(expr.op, ast.Or):
            return unify(self.kind_of(v) for v in expr.values)
        if t is ast.Subscript:
            return self._subscript(expr)
        if t is ast.NamedExpr:
            return self.kind_of(expr.value)
        if t is ast.Await:
            return None
        return None

    def _imported(self, qname: str) -> Kind | None:
        if qname.startswith(".") or (self.project is not None and not hf.is_hf(qname) and "." in qname):
            found = self._project_class(qname)
            if found is not None:
                return found
        return Kind("ref", qname)

    def _project_class(self, qname: str) -> Kind | None:
        if self.project is None:
            return None
        return self.project.class_kind(qname, self.path)

    def _name(self, name: ast.Name) -> Kind | None:
        if name.id in ("self", "cls"):
            return None
        found = self.analysis.reaching(name)
        if not found:
            star = self.analysis.star_module(name)
            if star is not None:
                return self._imported(f"{star}.{name.id}")
            return None
        return unify(self._binding(b) for b in found)

    # ------------------------------------------------------------------------------------------ bindings
    def _binding(self, b: Binding) -> Kind | None:
        kind = b.kind
        if kind == "import":
            return self._imported(b.qname or "")
        if kind == "class":
            return self._local_class(b.node)  # type: ignore[arg-type]
        if kind == "param":
            return self._param(b.node)  # type: ignore[arg-type]
        if kind in ("assign", "annassign", "walrus"):
            if b.value is None:
                return None
            if b.path:
                return self._element(b.value, b.path)
            found = self.kind_of(b.value)
            if found is None and kind == "annassign":
                stmt = b.statement
                if isinstance(stmt, ast.AnnAssign):
                    return self._annotation(stmt.annotation)
            return found
        if kind == "with" and b.value is not None and not b.path:
            # `with accelerator.main_process_first(): ...` is not a model; `with X(...) as m` gives X.__enter__()
            return None
        return None

    def class_kind(self, node: ast.ClassDef) -> Kind:
        """The kind of a class defined in this file (a "ref" to its transformers/trl/peft base, or "local")."""
        return self._local_class(node)

    def imported(self, qname: str) -> Kind | None:
        return self._imported(qname)

    def _local_class(self, node: ast.ClassDef) -> Kind:
        info = self.class_info(node)
        base = info.hf_base
        override = any(_old_override(c.node) for c in info.mro())
        if base is None:
            return Kind("local", node.name, cls=info)
        return Kind("ref", base, cls=info, old_override=override)

    def _param(self, arg: ast.arg) -> Kind | None:
        if arg.annotation is None:
            return self._param_from_callers(arg)
        return self._annotation(arg.annotation)

    def _param_from_callers(self, arg: ast.arg) -> Kind | None:
        """A parameter of a plain function that this file only ever calls with an argparse namespace, an instance of
        the user's own class or another library's object: proven not transformers', so its uses stay silent. (Only
        such proofs: the function may also be called from other modules, which is fine for silence, not for a
        rewrite.)"""
        a = self.analysis
        fn = a.parent(a.parent(arg))  # arg -> arguments -> def
        if not isinstance(fn, ast.FunctionDef) or fn.decorator_list or isinstance(a.parent(fn), ast.ClassDef):
            return None
        positional = [*fn.args.posonlyargs, *fn.args.args]
        index = positional.index(arg) if arg in positional else None
        binding = a.binding_for(fn)
        if binding is None:
            return None
        loads = a.loads(binding)
        calls = [n for n in loads if isinstance(a.parent(n), ast.Call) and a.parent(n).func is n]
        if not calls or len(calls) != len(loads):
            return None  # never called here, or also passed around as a value
        kinds = []
        for name in calls:
            call = a.parent(name)
            if any(isinstance(x, ast.Starred) for x in call.args) or any(k.arg is None for k in call.keywords):
                return None
            value = next((k.value for k in call.keywords if k.arg == arg.arg), None)
            if value is None and index is not None and index < len(call.args):
                value = call.args[index]
            if value is None:
                return None
            kinds.append(self.kind_of(value))
        found = unify(kinds)
        return found if found is not None and found.what in ("argparse", "instance", "foreign") else None

    def _local_function(self, func: ast.AST) -> ast.FunctionDef | None:
        """The undecorated function of this file a call's callee is bound to, else None."""
        if not isinstance(func, ast.Name):
            return None
        found = self.analysis.reaching(func)
        if len(found) == 1 and found[0].kind == "def" and isinstance(found[0].node, ast.FunctionDef):
            if not found[0].node.decorator_list:
                return found[0].node
        return None

    def _returned(self, fn: ast.FunctionDef, path: tuple[int, ...] = ()) -> Kind | None:
        """What a local function returns (element `path` of a returned tuple): the kinds of its `return` values."""
        values = self._return_values(fn)
        if values is None:
            return None
        return unify(self._element(v, path) if path else self.kind_of(v) for v in values)

    def _return_values(self, fn: ast.FunctionDef) -> list[ast.AST] | None:
        """The values of a function's `return`s (its nested defs excluded), once per function; None unless every one
        returns a value and the body ends in a return or raise (no falling off the end, no yield)."""
        if id(fn) in self._returns:
            return self._returns[id(fn)]
        values: list[ast.AST] | None = []
        stack: list[ast.AST] = list(fn.body)
        while stack and values is not None:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            if isinstance(node, (ast.Yield, ast.YieldFrom)) or (isinstance(node, ast.Return) and node.value is None):
                values = None
            elif isinstance(node, ast.Return):
                values.append(node.value)  # type: ignore[arg-type]
            else:
                stack.extend(ast.iter_child_nodes(node))
        if not values or not isinstance(fn.body[-1], (ast.Return, ast.Raise)):
            values = None
        self._returns[id(fn)] = values
        return values

    def _annotation(self, ann: ast.AST) -> Kind | None:
        if isinstance(ann, ast.Constant):
            return None  # a string annotation: not followed
        if isinstance(ann, ast.Subscript) and isinstance(ann.value, (ast.Name, ast.Attribute)):
            name = self.analysis.qualified_name(ann.value) or ""
            if hf.last(name) == "Optional":
                return self._annotation(ann.slice)
            return None
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            # `X | None`
            sides = [s for s in (ann.left, ann.right) if not (isinstance(s, ast.Constant) and s.value is None)]
            return self._annotation(sides[0]) if len(sides) == 1 else None
        kind = self.kind_of(ann)
        if kind is not None and kind.what == "local" and kind.cls is not None and self._plain_instance(kind.cls):
            return Kind("instance", kind.cls.name, cls=kind.cls)  # `args: MyArguments`, the user's own dataclass
        if kind is not None and kind.what == "ref" and kind.qname == "argparse.Namespace":
            return Kind("argparse")
        if kind is None or kind.what != "ref":
            return None
        return self._instance(kind)

    def _instance(self, cls: Kind) -> Kind | None:
        """The kind of an instance of class `cls` (a "ref")."""
        qname = cls.qname
        if hf.is_training_args_class(qname):
            return Kind("args", qname, cls=cls.cls)
        if hf.is_trainer_class(qname):
            return Kind("trainer", qname, cls=cls.cls)
        if hf.is_model_class(qname) or qname.endswith("PreTrainedModel"):
            return Kind("model", old_override=cls.old_override, cls=cls.cls)
        if hf.is_tokenizer_class(qname):
            return Kind("tokenizer", qname)
        if hf.is_processor_class(qname):
            return Kind("processor", qname)
        return None

    def _element(self, value: ast.AST, path: tuple[int, ...]) -> Kind | None:
        """The kind of element `path` of a tuple-unpacking assignment's value."""
        index = path[0]
        if isinstance(value, (ast.Tuple, ast.List)):
            if index < len(value.elts) and not any(isinstance(e, ast.Starred) for e in value.elts):
                inner = value.elts[index]
                return self._element(inner, path[1:]) if len(path) > 1 else self.kind_of(inner)
            return None
        if len(path) > 1:
            return None
        if isinstance(value, ast.Call) and self._local_function(value.func) is not None:
            return self._returned(self._local_function(value.func), path)  # type: ignore[arg-type]
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            method = value.func.attr
            parser = self.kind_of(value.func.value)
            if (
                parser is not None
                and parser.what == "parser"
                and method.startswith("parse_")
                and method != "parse_args"
                and index < len(parser.classes)
            ):
                cls = parser.classes[index]
                if cls is not None and cls.what == "ref" and hf.is_training_args_class(cls.qname):
                    return Kind("args", cls.qname, cls=cls.cls)
            return None
        if isinstance(value, ast.Subscript):
            table = self._registry_values(value.value)
            if table is not None:
                kinds = []
                for v in table:
                    if isinstance(v, (ast.Tuple, ast.List)) and index < len(v.elts):
                        kinds.append(self.kind_of(v.elts[index]))
                    else:
                        return None
                return unify(kinds)
        return None

    # ------------------------------------------------------------------------------------------ expressions
    def _registry_values(self, expr: ast.AST) -> list[ast.AST] | None:
        """The values of a dict literal bound once to `expr` (a Name): `MODEL_CLASSES = {"llama": Llama..., ...}`."""
        if not isinstance(expr, ast.Name):
            return None
        found = self.analysis.reaching(expr)
        if len(found) != 1 or found[0].kind not in ("assign", "annassign") or found[0].path:
            return None
        value = found[0].value
        if isinstance(value, ast.Dict) and value.values and all(k is not None for k in value.keys):
            return list(value.values)
        return None

    def _subscript(self, expr: ast.Subscript) -> Kind | None:
        table = self._registry_values(expr.value)
        if table is None:
            return self._imported_registry(expr.value)
        return unify(self.kind_of(v) for v in table)

    def registry_kind(self, name: str) -> Kind | None:
        """The unified kind of the values of the module-level dict literal `name` of this file."""
        bindings = self.analysis.module_scope().bindings.get(name, [])
        if len(bindings) != 1 or bindings[0].kind != "assign" or bindings[0].path:
            return None
        value = bindings[0].value
        if not isinstance(value, ast.Dict) or not value.values or any(k is None for k in value.keys):
            return None
        return unify(self.kind_of(v) for v in value.values)

    def _imported_registry(self, expr: ast.AST) -> Kind | None:
        """`from .registry import MODEL_CLASSES` then `MODEL_CLASSES[name]`: the registry of another project file."""
        if self.project is None or not isinstance(expr, ast.Name):
            return None
        found = self.analysis.reaching(expr)
        if len(found) != 1 or found[0].kind != "import" or not found[0].qname:
            return None
        return self.project.registry_kind(found[0].qname, self.path)

    def _attribute(self, expr: ast.Attribute) -> Kind | None:
        attr = expr.attr
        base = expr.value
        if isinstance(base, ast.Name) and base.id == "self":
            info = self.enclosing_class_info(expr)
            if info is not None and info.hf_base is not None and hf.is_trainer_class(info.hf_base):
                if attr == "args":
                    return Kind("args", "transformers.TrainingArguments")
                if attr == "model":
                    return MODEL
                return None
            if info is not None and isinstance(expr.ctx, ast.Load):
                return self._self_attribute(info, attr)
            return None
        base_kind = self.kind_of(base)
        if base_kind is None:
            return None
        if base_kind.what == "trainer":
            if attr == "args":
                return Kind("args", "transformers.TrainingArguments")
            if attr == "model":
                return MODEL
        return None

    def _self_attribute(self, info: ClassInfo, attr: str) -> Kind | None:
        """`self.<attr>` read in a method of a user class that is not a transformers/trl/peft one: what every
        assignment of it in the class and its user-defined bases gives (`self.model = AutoModel...from_pretrained()`
        in `__init__`), when those are plain assignments in this file, they agree and no base is unknown."""
        a = self.analysis
        classes = info.mro()
        if info.hf_base is not None or any(c.resolver is not self for c in classes):
            return None
        if any(b is None for c in classes for b in c.bases):
            return None  # an unknown base may set it too
        nodes = {id(c.node) for c in classes}
        values: list[ast.AST] = []
        for node in a.attributes.get(attr, ()):
            if isinstance(node.ctx, ast.Load) or not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                continue
            cls = a.enclosing_class(node)
            if cls is None or id(cls) not in nodes:
                continue
            parent = a.parent(node)
            if isinstance(parent, ast.Assign) and node in parent.targets:
                values.append(parent.value)
            elif isinstance(parent, ast.AnnAssign) and parent.target is node and parent.value is not None:
                values.append(parent.value)
            else:
                return None  # a tuple target, an augmented assignment, a `del`: not followed
        return unify(self.kind_of(v) for v in values) if values else None

    def _wrapped(self, call: ast.Call) -> Kind | None:
        """get_peft_model(m, ...), PeftModel.from_pretrained(m, ...), torch.compile(m): the result forwards the
        model's methods to `m`, so it is a model exactly when `m` is one (same overrides)."""
        first: ast.AST | None = None
        if call.args and not isinstance(call.args[0], ast.Starred):
            first = call.args[0]
        else:
            first = next((k.value for k in call.keywords if k.arg == "model"), None)
        if first is None:
            return None
        kind = self.kind_of(first)
        return kind if kind is not None and kind.what == "model" else None

    def remote_code(self, call: ast.Call) -> bool:
        """`trust_remote_code=` (not literal False/None) in the call or in a same-scope `**` dict: the class comes from
        the Hub and may override gradient_checkpointing_enable the old way."""
        from codemods.flows import dict_keys_in_scope

        for k in call.keywords:
            if k.arg == "trust_remote_code":
                return not (isinstance(k.value, ast.Constant) and k.value.value in (False, None))
            if k.arg is None and isinstance(k.value, ast.Name):
                if "trust_remote_code" in dict_keys_in_scope(self.analysis, k.value):
                    return True
        return False

    def _call(self, call: ast.Call) -> Kind | None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and 1 <= len(call.args) <= 2 and not call.keywords:
            table = self._registry_values(func.value)
            if table is not None:  # `MODEL_CLASSES.get(name, AutoModelForVision2Seq)`
                return unify([*(self.kind_of(v) for v in table), *(self.kind_of(d) for d in call.args[1:])])
        if isinstance(func, ast.Attribute):
            method = func.attr
            recv = self.kind_of(func.value)
            if recv is not None and recv.what == "ref":
                if method in hf.LOAD_METHODS:
                    if hf.is_peft_model_class(recv.qname):
                        return self._wrapped(call)  # PeftModel.from_pretrained(base, ...) forwards to base
                    if hf.is_model_class(recv.qname):
                        if self.remote_code(call):
                            return None  # the Hub's code may define any class, with old-style overrides
                        return Kind("model", old_override=recv.old_override, cls=recv.cls)
                    if hf.is_tokenizer_class(recv.qname):
                        return Kind("tokenizer", recv.qname)
                    if hf.is_processor_class(recv.qname):
                        return Kind("processor", recv.qname)
                    if not hf.is_hf(recv.qname):
                        return Kind("foreign", recv.qname)
                    return None
                if method == "from_pretrained" and not hf.is_hf(recv.qname):
                    return Kind("foreign", recv.qname)
            if recv is not None and recv.what == "model" and method in hf.MODEL_PRESERVING_METHODS:
                return recv
            if recv is not None and recv.what == "parser" and method == "parse_args":
                return Kind("argparse")
            if recv is not None and recv.what == "ref" and recv.qname == "argparse.ArgumentParser":
                return None
            if recv is not None and recv.what == "argparse_parser" and method in ("parse_args", "parse_known_args"):
                return Kind("argparse")
            if recv is not None and recv.what == "args" and method == "set_training":
                return recv
            if method == "prepare" and len(call.args) == 1 and not call.keywords:
                inner = self._wrapped(call)  # accelerator.prepare(model) returns the (wrapped) model
                if inner is not None:
                    return inner
        member = self.getattr_module(call)
        if member is not None:
            return self._imported(member)
        local = self._local_function(func)
        if local is not None:
            return self._returned(local)
        callee = self.kind_of(func)
        if callee is None:
            return None
        if callee.what == "local":
            # an instance of the user's own class: proven not a transformers object when every base is known
            info = callee.cls
            if info is not None and self._plain_instance(info):
                return Kind("instance", info.name, cls=info)
            return None
        if callee.what != "ref":
            return None
        qname = callee.qname
        if qname == "argparse.ArgumentParser":
            return Kind("argparse_parser")
        if qname in ("torch.compile",):
            return self._wrapped(call)
        if hf.is_hf(qname):
            name = hf.last(qname)
            if hf.is_training_args_class(qname):
                return Kind("args", qname, cls=callee.cls)
            if hf.is_trainer_class(qname):
                return Kind("trainer", qname, cls=callee.cls)
            if hf.is_arg_parser_class(qname):
                return Kind("parser", qname, self._parser_classes(call))
            if hf.root(qname) == "peft" and name in hf.PEFT_MODEL_FUNCTIONS:
                return self._wrapped(call)
            if hf.is_model_class(qname):
                return Kind("model", old_override=callee.old_override, cls=callee.cls)
            return None
        if hf.root(qname) == "dataclasses" and hf.last(qname) == "replace" and call.args:
            inner = self.kind_of(call.args[0])
            return inner if inner is not None and inner.what == "args" else None
        if hf.last(qname)[:1].isupper():
            return Kind("foreign", qname)
        return None

    @staticmethod
    def _plain_instance(info: ClassInfo) -> bool:
        """An instance of this user class is proven not a transformers object: every base of it and of its user-defined
        bases is known and not from transformers/trl/peft (a user class, or another library's such as torch.nn.Module),
        and none of them forwards unknown attributes (`__getattr__`, as model wrappers do, would reach a wrapped
        transformers model)."""
        for cls in info.mro():
            for base in cls.bases:
                if base is None or base.what not in ("local", "foreign", "ref") or hf.is_hf(base.qname or ""):
                    return False
        return info.method("__getattr__") is None

    def getattr_module(self, call: ast.Call) -> str | None:
        """`getattr(transformers, name)`: "transformers.*" (a member whose name is not a literal)."""
        func = call.func
        if not (isinstance(func, ast.Name) and func.id == "getattr" and not self.analysis.reaching(func)):
            return None
        if len(call.args) < 2:
            return None
        module = self.analysis.qualified_name(call.args[0])
        if module is None or not hf.is_hf(module):
            return None
        name = string_value(call.args[1])
        return f"{module}.{name}" if name else f"{module}.{hf.UNKNOWN_MEMBER}"

    def _parser_classes(self, call: ast.Call) -> tuple:
        if not call.args:
            return ()
        value = call.args[0]
        elements = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
        out = []
        for el in elements:
            if isinstance(el, ast.Starred):
                return ()
            kind = self.kind_of(el)
            out.append(kind if kind is not None and kind.what == "ref" else None)
        return tuple(out)
