"""transformers-processing-class: `Trainer(tokenizer=...)` -> `Trainer(processing_class=...)`, and the reads.

transformers 4.46 renamed the Trainer's `tokenizer` argument to `processing_class` (gate `processing_class_kwarg`):
`tokenizer=` warns until 4.57 and is a TypeError from 5.0; `trainer.tokenizer` is a deprecated property until 4.57
and an AttributeError from 5.0; TrainerCallback events receive only `processing_class=` from 4.46 (silently: a
`tokenizer=None` parameter stays None).

Rewritten (codemods.rules._trainers.ProcessingClass with the transformers family): the keyword on `Trainer`,
`Seq2SeqTrainer` and the user's subclasses (this file or the project; not a subclass whose own `__init__` takes
`tokenizer`, whose `super().__init__(...)` call is renamed instead), the key of a same-scope dict passed with `**`,
`self.tokenizer` in subclasses that never assign it, `trainer.tokenizer` on known trainers, and the `tokenizer`
parameter / `kwargs["tokenizer"]` of TrainerCallback `on_*` events. Left alone: data collators, pipelines, the
user's functions, TRL trainers (the TRL rules), a positional tokenizer (same position before and after). Reported:
both keywords given, a dict that also goes elsewhere, an unresolvable `*Trainer` class.
"""

from __future__ import annotations

import re

from codemods.rule import FileContext, Rule
from codemods.rules._trainers import TRANSFORMERS, ProcessingClass

_SHAPE = re.compile(r"\btokenizer\b[ \t]*=(?!=)|\.tokenizer\b|[\"']tokenizer[\"']")


class TransformersProcessingClass(Rule):
    id = "transformers-processing-class"
    summary = "Trainer(tokenizer=) -> processing_class=; trainer/self.tokenizer; TrainerCallback event parameters"
    triggers = ("tokenizer",)
    gates = (TRANSFORMERS.gate,)

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        # a Trainer (construction, subclass, callback) and a keyword, attribute or key `tokenizer`; the substring
        # test first: most files with a tokenizer have no Trainer
        return "Trainer" in source and _SHAPE.search(source) is not None

    def check(self, ctx: FileContext) -> None:
        ProcessingClass(ctx, TRANSFORMERS).run()
