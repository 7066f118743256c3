"""transformers-tokenizer-type: `AutoTokenizer.from_pretrained(tokenizer_type="llama")` -> the keyword dropped.

transformers 5.0 removed most model types from the tokenizer mapping (gate `tokenizer_type_mapping_v5`):
`tokenizer_type="llama"` raises `ValueError: Passed tokenizer_type llama does not exist`. Without the keyword the
checkpoint's tokenizer_config.json names the class (what `tokenizer_type` pointed at for such checkpoints).

Dropped: a literal type that 5.x no longer maps (REMOVED: the model types of 4.57.6's mapping missing from some
5.x release up to 5.24; a frozen list, read from the wheels). Left alone: types 5.x still maps (`"t5"`, `"gpt2"`),
other callees. Reported: a computed `tokenizer_type=`.
"""

from __future__ import annotations

import ast

from codemods import hf
from codemods.analysis import string_value
from codemods.rule import FileContext, Rule
from codemods.rules._trainers import Change, ConfigFields, Field, Item

REMOVED = frozenset(
    {
        "arcee", "aria", "bitnet", "bloom", "blt", "chameleon", "colpali", "csm", "deepseek_v2", "deepseek_v3",
        "deepseek_vl", "deepseek_vl_hybrid", "diffllama", "ernie4_5", "ernie4_5_moe", "ernie_m", "exaone4", "falcon",
        "gpt_oss", "gptsan-japanese", "helium", "idefics3", "jamba", "janus", "jetmoe", "jukebox", "kosmos-2.5",
        "llama", "llama4", "llama4_text", "llava", "llava_next", "llava_next_video", "llava_onevision", "longt5",
        "minimax", "ministral", "mllama", "modernbert", "moonshine", "moshi", "nemotron", "paligemma", "parakeet",
        "persimmon", "phi3", "phimoe", "smollm3", "speech_to_text_2", "tapex", "transfo-xl", "video_llava",
        "vipllava", "xlm-prophetnet", "zamba", "zamba2",
    }
)  # fmt: skip


class _TokenizerType(Field):
    def __init__(self) -> None:
        super().__init__("tokenizer_type")

    def plan(self, item: Item, siblings):
        value = string_value(item.value)
        if value is None:
            if isinstance(item.value, ast.Constant) and item.value.value is None:
                return None
            return (
                "computed tokenizer_type=: 5.x maps few types (llama raises); drop it if the checkpoint has one",
                "5.x maps few types: drop it if the checkpoint has one",
            )
        if value in REMOVED:
            return [(item, Change(None, message=f'tokenizer_type="{value}" dropped (not a 5.x tokenizer type)'))]
        return None


class TransformersTokenizerType(Rule):
    id = "transformers-tokenizer-type"
    summary = 'AutoTokenizer.from_pretrained(tokenizer_type="llama") -> dropped (5.0 maps few model types)'
    triggers = ("tokenizer_type",)
    gates = ("tokenizer_type_mapping_v5",)

    def check(self, ctx: FileContext) -> None:
        def auto_tokenizer_load(call: ast.Call) -> bool:
            func = call.func
            if not (isinstance(func, ast.Attribute) and func.attr == "from_pretrained"):
                return False
            qname = ctx.kinds.ref_qname(func.value)
            return qname is not None and hf.root(qname) == "transformers" and hf.last(qname) == "AutoTokenizer"

        ConfigFields(ctx, (_TokenizerType(),), lambda qname: False, calls=auto_tokenizer_load).run()
