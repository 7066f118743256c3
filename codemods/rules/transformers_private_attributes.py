"""transformers-private-attributes (diagnostics only): private transformers attributes that moved.

`tokenizer._pad_token` and the other `_<name>_token` attributes went in 4.47 (the special tokens live in
`_special_tokens_map`; read `tokenizer.pad_token`); `additional_special_tokens` became `extra_special_tokens` in
5.0; `transformers._import_structure` is keyed per file from 4.52 (`KeyError: 'models.llama'`; test
`hasattr(transformers, "LlamaTokenizer")` or the version instead). Private APIs have no contract, so nothing is
rewritten: each use is reported. The user's own private attributes (`self._pad_token` in their class, attributes of
objects known not to be tokenizers) stay silent.
"""

from __future__ import annotations

import re

from codemods.rule import FileContext, Rule
from codemods.rules._trainers import tokenizer_receiver

SPECIAL = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
PRIVATE_TOKENS = tuple(f"_{name}_token" for name in SPECIAL)


class TransformersPrivateAttributes(Rule):
    id = "transformers-private-attributes"
    summary = "reports tokenizer._pad_token (4.47), .additional_special_tokens (5.0), transformers._import_structure"
    triggers = (
        *(f".{name}" for name in PRIVATE_TOKENS),
        "transformers._import_structure",
        ".additional_special_tokens",
    )
    # not `self._pad_token` (a class's own attribute)
    trigger_regex = re.compile(
        r"(?<!self)\._(?:bos|eos|unk|sep|pad|cls|mask)_token\b|\._import_structure\b|\.additional_special"
    )

    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        for name in PRIVATE_TOKENS:
            for node in a.attributes.get(name, ()):
                if tokenizer_receiver(ctx, node.value) != "no":
                    public = name[1:]
                    ctx.diagnose(
                        node,
                        f"{name} is gone from 4.47 (private): use tokenizer.{public}",
                        f"gone from 4.47: use .{public}",
                    )
        for node in a.attributes.get("additional_special_tokens", ()):
            if tokenizer_receiver(ctx, node.value) == "yes":
                ctx.diagnose(
                    node,
                    "additional_special_tokens is gone in 5.0: use tokenizer.extra_special_tokens",
                    "gone in 5.0: use .extra_special_tokens",
                )
        for node in a.attributes.get("_import_structure", ()):
            if a.qualified_name(node) == "transformers._import_structure":
                ctx.diagnose(
                    node,
                    '_import_structure is keyed per file from 4.52: test hasattr(transformers, "Name") instead',
                    "keyed per file from 4.52: use hasattr()",
                )
