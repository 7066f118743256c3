"""transformers-tokenizer-methods: `tok.encode_plus(...)` / `tok.batch_encode_plus(...)` -> `tok(...)`.

transformers 5.0's tokenizers dropped `encode_plus`, `batch_encode_plus`, `as_target_tokenizer()` and
`prepare_seq2seq_batch` (AttributeError). Calling the tokenizer does the same on every version; its positional
parameters are `(text, text_pair, text_target, ...)`, while `encode_plus(text, text_pair, add_special_tokens, ...)`
and `batch_encode_plus(batch_text_or_text_pairs, add_special_tokens, ...)` differ after the text (and pair), so only
calls that pass at most those positionally are rewritten.

Rewritten: calls on receivers known to be tokenizers (codemods.rules._trainers.tokenizer_receiver). Reported: other
positional arguments, receivers of unknown type, `as_target_tokenizer()` blocks and `prepare_seq2seq_batch` (rewrite
them to `tok(inputs, text_target=targets)` by hand).
"""

from __future__ import annotations

import ast

from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule
from codemods.rules._trainers import tokenizer_receiver

METHODS = {"encode_plus": 2, "batch_encode_plus": 1}  # the positional arguments __call__ takes the same way
BY_HAND = ("as_target_tokenizer", "prepare_seq2seq_batch")


class TransformersTokenizerMethods(Rule):
    id = "transformers-tokenizer-methods"
    summary = "tok.encode_plus(...)/batch_encode_plus(...) -> tok(...) (removed in 5.0); as_target_tokenizer reported"
    triggers = ("encode_plus", *BY_HAND)
    gates = (COMPAT_FLOOR_GATE,)

    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        for method, positional in METHODS.items():
            for call in a.calls_by_attr.get(method, ()):
                if a.in_fstring(call):
                    continue
                assert isinstance(call.func, ast.Attribute)
                verdict = tokenizer_receiver(ctx, call.func.value)
                if verdict == "no":
                    continue
                if verdict == "unknown":
                    ctx.diagnose(
                        call,
                        f"if a transformers tokenizer, call it: tok(...) ({method} is gone in 5.0)",
                        "if a tokenizer, call it: tok(...) (gone in 5.0)",
                    )
                elif len(call.args) > positional or any(isinstance(x, ast.Starred) for x in call.args):
                    ctx.diagnose(
                        call,
                        f"{method}: pass the arguments after the text by keyword, then call the tokenizer",
                        "pass these by keyword, then call the tokenizer",
                    )
                else:
                    ctx.edit(call, lambda c: c.with_changes(func=c.func.value), f"tok.{method}(...) -> tok(...)")
        for method in BY_HAND:
            for call in a.calls_by_attr.get(method, ()):
                assert isinstance(call.func, ast.Attribute)
                if tokenizer_receiver(ctx, call.func.value) == "no" or a.in_fstring(call):
                    continue
                ctx.diagnose(
                    call,
                    f"{method} is gone in 5.0: tokenize targets with tok(..., text_target=...)",
                    "gone in 5.0: use tok(..., text_target=...)",
                )
