"""transformers-use-auth-token: `use_auth_token=` -> `token=` on Hugging Face loading and push calls.

transformers removed `use_auth_token` in 5.0: model `from_pretrained` and `push_to_hub` raise TypeError, and
tokenizers and configs silently drop it (no token is sent: a gated repo then fails). datasets (`token=` from 2.14,
`use_auth_token` removed in 3.0) and huggingface_hub (mapped until 0.36, removed in 1.0) went the same way. `token=`
takes the same values and works on every version the codemod supports, so the rule has no gate of its own.

Renamed: the keyword on `.from_pretrained(...)` and `.push_to_hub(...)` of any receiver that is not the user's own
class (every Hugging Face-style loader takes `token=`: transformers, peft, TRL, sentence-transformers, unsloth,
diffusers), on functions and classes of transformers, datasets, huggingface_hub, peft and TRL (`pipeline`,
`load_dataset`, `hf_hub_download`, `snapshot_download`, `HfApi` methods, ...), and as a key of a same-scope dict
passed to one of those with `**`. Left alone: the user's own functions, methods, dataclass fields and argparse flags
named `use_auth_token` (the value they pass on is renamed where it reaches a library). Reported: `token=` and
`use_auth_token=` both given.
"""

from __future__ import annotations

import ast

from codemods import hf
from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule
from codemods.rules._keywords import keyword
from codemods.rules._trainers import rename_keys

OLD, NEW = "use_auth_token", "token"
ROOTS = frozenset({"transformers", "datasets", "huggingface_hub", "peft", "trl"})
METHODS = frozenset({"from_pretrained", "push_to_hub"})


class TransformersUseAuthToken(Rule):
    id = "transformers-use-auth-token"
    summary = "use_auth_token= -> token= (from_pretrained, push_to_hub, datasets, huggingface_hub; same-scope dicts)"
    triggers = (OLD,)
    gates = (COMPAT_FLOOR_GATE,)

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        a = ctx.analysis
        done: set[tuple[int, str]] = set()
        for kw in a.keywords.get(OLD, ()):
            call = a.call_of_keyword(kw)
            if call is None or a.in_fstring(call) or not self.target(call):
                continue
            if keyword(call, NEW) is not None:
                ctx.diagnose(kw, "both token= and use_auth_token= are given; keep token=")
            else:
                ctx.rename_keyword(kw, NEW)
        for call in a.calls:
            if any(k.arg is None and isinstance(k.value, ast.Name) for k in call.keywords) and self.target(call):
                for k in call.keywords:
                    if k.arg is None and isinstance(k.value, ast.Name):
                        rename_keys(ctx, k.value, {OLD: NEW}, self.is_sink, done)

    def is_sink(self, use: ast.AST, container: ast.AST) -> bool | None:
        if isinstance(use, ast.keyword) and use.arg is None and isinstance(container, ast.Call):
            return True if self.target(container) else None
        return None

    def target(self, call: ast.Call) -> bool:
        """A call that hands `use_auth_token`/`token` to a Hugging Face library."""
        ctx = self.ctx
        func = call.func
        if isinstance(func, ast.Attribute):
            recv = func.value
            if func.attr in METHODS:
                if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
                    info = ctx.kinds.enclosing_class_info(recv)
                    return info is not None and info.hf_base is not None and not _own(info, func.attr)
                kind = ctx.kinds.kind_of(recv)
                if kind is not None and kind.what in ("local", "instance"):
                    return False  # the user's own class
                return not (kind is not None and kind.cls is not None and _own(kind.cls, func.attr))
            kind = ctx.kinds.kind_of(recv)
            if kind is not None and kind.what in ("foreign", "ref") and hf.root(kind.qname) == "huggingface_hub":
                return True  # HfApi().upload_folder(...)
        kind = ctx.kinds.kind_of(func)
        return kind is not None and kind.what == "ref" and kind.cls is None and hf.root(kind.qname) in ROOTS


def _own(info, method: str) -> bool:
    """The user's class defines the method with a `use_auth_token` parameter of its own."""
    fn = info.method(method)
    if fn is None:
        return False
    return any(a.arg == OLD for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs])
