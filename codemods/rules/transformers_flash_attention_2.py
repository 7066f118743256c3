"""transformers-flash-attention-2: `from_pretrained(use_flash_attention_2=...)` -> `attn_implementation=`.

`use_flash_attention_2=` was deprecated in 4.36 for `attn_implementation="flash_attention_2"` (present on every
supported version) and removed in 4.53: any value, `False` too, now reaches the model's `__init__` (TypeError).

Rewritten on transformers loading calls (receivers as for transformers-torch-dtype) and the keys of same-scope dicts
passed to them with `**`: `True` -> `attn_implementation="flash_attention_2"`, `False` -> dropped (the default), a
computed `X` -> `attn_implementation="flash_attention_2" if X else None` (None: the default); beside an
`attn_implementation=` that says `"flash_attention_2"` the flag is dropped. Reported: a conflicting
`attn_implementation=`, unknown receivers. Left alone: the user's own parameters and argparse flags of that name.
"""

from __future__ import annotations

import ast

from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule
from codemods.rules._keywords import keyword, loading_call
from codemods.rules._trainers import ConfigFields, flag

OLD = "use_flash_attention_2"
FIELDS = (
    flag(
        OLD,
        "attn_implementation",
        '"flash_attention_2"',
        "None",
        conflict="same",
    ),
)
KEYWORDS = frozenset({OLD})


class TransformersFlashAttention2(Rule):
    id = "transformers-flash-attention-2"
    summary = 'from_pretrained(use_flash_attention_2=) -> attn_implementation="flash_attention_2" (TypeError 4.53)'
    triggers = (OLD,)
    gates = (COMPAT_FLOOR_GATE,)

    def check(self, ctx: FileContext) -> None:
        def load(call: ast.Call) -> bool:
            return loading_call(ctx, call, KEYWORDS) == "load"

        ConfigFields(ctx, FIELDS, lambda qname: False, calls=load).run()
        for kw in ctx.analysis.keywords.get(OLD, ()):
            call = ctx.analysis.call_of_keyword(kw)
            if call is not None and loading_call(ctx, call, KEYWORDS) == "unknown" and keyword(call, OLD) is kw:
                ctx.diagnose(
                    call,
                    'unknown receiver: if a transformers model, write attn_implementation="..."',
                    "if a transformers model, write attn_implementation=",
                )
