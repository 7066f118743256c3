"""transformers-torch-dtype: `torch_dtype=` -> `dtype=` where the keyword reaches transformers.

transformers 4.56 renamed the loading keyword `torch_dtype` to `dtype` (`torch_dtype` is still accepted, with a
deprecation log); before 4.56, `dtype=` breaks config serialisation, hence the gate `dtype_kwarg`.

Rewritten: the keyword in `X.from_pretrained/from_config/_from_config(...)` where `X` is a transformers model class
(Auto* or concrete, any import form or alias, also through `M = AutoModel` and `cls = A if c else B`, a registry
`MODEL_CLASSES[name]`, `getattr(transformers, name)`, the user's own subclass in this file or another file of the
project), TRL's value-head models and peft's `AutoPeftModel*`; `transformers.pipeline(...)`, and the keys of its
`model_kwargs`; the keys of TRL's `*model_init_kwargs` dicts (config keyword or `args.model_init_kwargs = ...`); and
the key `"torch_dtype"` of a dict that flows, in the same scope, into one of those through `**`, together with the
reads of that key from the same dict. Left alone: attributes (`config.torch_dtype`), parameters and fields named
`torch_dtype`, other libraries (diffusers, unsloth, ... still take `torch_dtype`); reported (a diagnostic):
`from_pretrained(torch_dtype=...)` on a receiver of unknown type.
"""

from __future__ import annotations

import ast
import re

from codemods.analysis import string_value
from codemods.rule import FileContext, Rule
from codemods.rules._keywords import (
    INIT_KWARGS,
    Renamer,
    init_kwargs_assignments,
    keyword,
    loading_call,
    loading_calls,
    loading_sink,
)

OLD, NEW = "torch_dtype", "dtype"
KEYWORDS = frozenset({OLD, "model_kwargs"})


class TransformersTorchDtype(Rule):
    id = "transformers-torch-dtype"
    summary = (
        "torch_dtype= -> dtype= in from_pretrained/from_config/pipeline/TRL model_init_kwargs (and same-scope dicts)"
    )
    triggers = ("torch_dtype",)
    trigger_regex = re.compile(r"\btorch_dtype[ \t]*=(?!=)|[\"']torch_dtype[\"']")
    gates = ("dtype_kwarg",)

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.sink = lambda call: loading_call(ctx, call, KEYWORDS)
        self.renamer = Renamer(
            ctx, {OLD: NEW}, loading_sink(self.sink, frozenset({"load", "pipeline"})), '"torch_dtype"'
        )
        for call in loading_calls(ctx, (OLD,)):
            self.plan_call(call)
        for assign in init_kwargs_assignments(ctx):
            self.renamer.dict_value(assign.value, assign)
        self.plan_init_kwargs_keys()

    def plan_call(self, call: ast.Call) -> None:
        ctx = self.ctx
        kind = self.sink(call)
        if kind is None or ctx.analysis.in_fstring(call):
            return
        if kind in ("load", "pipeline"):
            self.renamer.keywords(call)
            self.renamer.stars(call)
            if kind == "pipeline":
                mk = keyword(call, "model_kwargs")
                if mk is not None:
                    self.renamer.dict_value(mk.value, call)
        elif kind == "trl_config":
            for kw in call.keywords:
                if kw.arg is not None and INIT_KWARGS.match(kw.arg):
                    self.renamer.dict_value(kw.value, call)
        elif kind == "unknown" and keyword(call, OLD) is not None:
            ctx.diagnose(call, "unknown receiver: if a transformers class, write dtype=")

    def plan_init_kwargs_keys(self) -> None:
        """`args.model_init_kwargs["torch_dtype"] = ...` (and its reads)."""
        ctx, a = self.ctx, self.ctx.analysis
        stores: dict[str, list[ast.Constant]] = {}
        reads: set[str] = set()
        for attr_name, nodes in a.attributes.items():
            if not INIT_KWARGS.match(attr_name):
                continue
            for node in nodes:
                parent = a.parent(node)
                if isinstance(parent, ast.Assign) and node in parent.targets:
                    if all(isinstance(t, ast.Attribute) and INIT_KWARGS.match(t.attr) for t in parent.targets):
                        self.renamer.dict_value(parent.value, parent)
                elif isinstance(parent, ast.Subscript) and parent.value is node and string_value(parent.slice) == OLD:
                    text = a.text(node)
                    if isinstance(parent.ctx, ast.Store):
                        stores.setdefault(text, []).append(parent.slice)  # type: ignore[arg-type]
                    else:
                        reads.add(text)
        for text, strings in stores.items():
            for string in strings:
                if text in reads:
                    ctx.todo(
                        string,
                        '"torch_dtype" is read here too; rename all uses together',
                    )
                else:
                    ctx.rename_string(string, OLD, NEW)
