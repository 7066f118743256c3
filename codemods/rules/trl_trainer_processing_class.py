"""trl-trainer-processing-class: `tokenizer=` -> `processing_class=` on TRL's trainers, and on TRL's chat-template
functions.

TRL 0.12 renamed the trainers' `tokenizer` argument to `processing_class` (gate `trl_processing_class`; the old
keyword raises TypeError from 0.13-0.16 depending on the trainer), and TRL 1.3 renamed the `tokenizer` parameter of
`trl.apply_chat_template` / `trl.maybe_apply_chat_template` without a deprecation (gate
`trl_data_utils_processing_class`).

Rewritten (codemods.rules._trainers.ProcessingClass with the TRL family): the keyword on every TRL trainer
(`trl.*Trainer`, `trl.experimental.*`, the user's subclasses in this file or the project; a subclass whose own
`__init__` takes `tokenizer` keeps its API and its `super().__init__(...)` call is renamed instead), the key of a
same-scope dict passed with `**`, `self.tokenizer` in subclasses that never assign it, `trainer.tokenizer` on known
TRL trainers; `tokenizer=` at a call of the chat-template functions and the `"tokenizer"` key of a literal
`fn_kwargs=` in `dataset.map(<that function>, fn_kwargs=...)`. Left alone: collators, pipelines, PPOTrainer (its
old API is reported by trl-imports), the user's own classes named like TRL's, a positional tokenizer (same position
before and after). Reported: both keywords, a dict that also goes elsewhere.
"""

from __future__ import annotations

import ast
import re

import libcst as cst

from codemods import hf
from codemods.analysis import string_value
from codemods.flows import dict_keys_in_scope
from codemods.rule import FileContext, Rule
from codemods.rules._trainers import Family, ProcessingClass


def is_trl_trainer(qname: str) -> bool:
    """A TRL trainer whose `tokenizer` became `processing_class`. Not PPOTrainer: TRL <= 0.11's PPO API (the one
    with `tokenizer` and `self.tokenizer`) was replaced in 0.12 and PPO deleted in 1.13 (trl-imports reports it)."""
    return hf.is_trl_trainer(qname) and hf.last(qname) not in ("PPOTrainer", "PPOv2Trainer")


TRL = Family(
    "TRL",
    "a TRL trainer",
    is_trl_trainer,
    "trl_processing_class",
    both="both tokenizer= and processing_class= are given (ValueError in TRL 0.12.1-0.15); keep one",
)
DATA_UTILS_GATE = "trl_data_utils_processing_class"
_USES = re.compile(r"\btokenizer\b[ \t]*=(?!=)|\.tokenizer\b|[\"']tokenizer[\"']")
_CHAT_FUNCTIONS = frozenset({"apply_chat_template", "maybe_apply_chat_template"})


def is_chat_function(qname: str | None) -> bool:
    """trl.apply_chat_template / trl.maybe_apply_chat_template (also through trl.data_utils)."""
    return qname is not None and hf.root(qname) == "trl" and hf.last(qname) in _CHAT_FUNCTIONS


class TrlTrainerProcessingClass(Rule):
    id = "trl-trainer-processing-class"
    summary = "TRL trainers' tokenizer= -> processing_class=; trl.(maybe_)apply_chat_template(tokenizer=) too"
    triggers = ("tokenizer",)
    gates = (TRL.gate,)
    item_gates = (DATA_UTILS_GATE,)

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        # a TRL import, or a project class deriving from a TRL trainer; then a keyword/attribute/key `tokenizer`
        return ("trl" in source or "Trainer" in source) and _USES.search(source) is not None

    def check(self, ctx: FileContext) -> None:
        ProcessingClass(ctx, TRL).run()
        if ctx.target_meets(DATA_UTILS_GATE):
            self.chat_functions(ctx)

    def chat_functions(self, ctx: FileContext) -> None:
        a = ctx.analysis
        for kw in a.keywords.get("tokenizer", ()):
            call = a.call_of_keyword(kw)
            if call is None or a.in_fstring(call) or not is_chat_function(ctx.kinds.ref_qname(call.func)):
                continue
            if any(k.arg == "processing_class" for k in call.keywords):
                ctx.diagnose(kw, "both tokenizer= and processing_class= are given; keep processing_class=")
            else:
                ctx.rename_keyword(kw, "processing_class")
        for call in a.calls_by_attr.get("map", ()):
            if not call.args or not is_chat_function(ctx.kinds.ref_qname(call.args[0])):
                continue
            kwargs = next((k for k in call.keywords if k.arg == "fn_kwargs"), None)
            if kwargs is not None:
                self.fn_kwargs(ctx, kwargs.value)

    def fn_kwargs(self, ctx: FileContext, value: ast.AST) -> None:
        """`fn_kwargs={"tokenizer": tok}` / `fn_kwargs=dict(tokenizer=tok)`: the function receives them as keywords."""
        if isinstance(value, ast.Dict):
            keys = [string_value(k) for k in value.keys]
            for key in value.keys:
                if string_value(key) == "tokenizer":
                    if "processing_class" in keys:
                        ctx.diagnose(key, 'fn_kwargs has both "tokenizer" and "processing_class"; keep the second')
                    else:
                        ctx.rename_string(key, "tokenizer", "processing_class")  # type: ignore[arg-type]
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
            if ctx.analysis.reaching(value.func):
                return  # another `dict`
            names = [k.arg for k in value.keywords]
            for kw in value.keywords:
                if kw.arg == "tokenizer":
                    if "processing_class" in names:
                        ctx.diagnose(kw, 'fn_kwargs has both "tokenizer" and "processing_class"; keep the second')
                    else:
                        ctx.edit(kw, lambda a: a.with_changes(keyword=cst.Name("processing_class")),
                                 "fn_kwargs tokenizer -> processing_class")  # fmt: skip
        elif isinstance(value, ast.Name) and "tokenizer" in dict_keys_in_scope(ctx.analysis, value):
            ctx.diagnose(value, 'this dict has a "tokenizer" key: rename it "processing_class" where it is built')
