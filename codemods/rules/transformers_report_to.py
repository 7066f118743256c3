"""transformers-report-to: `report_to=None` -> `report_to="none"` (from a 5.0 target).

On 4.x `report_to=None` (the default) meant "every installed integration"; 5.0 made `"none"` the default and an
explicit `report_to=None` makes `Trainer(...)` raise `ValueError: None is not supported` (gate
`report_to_none_rejected`). The rewrite writes `"none"`, not `"all"` (the old meaning): an explicit None almost
always meant "don't report"; `"none"` is what 5.x does without the argument; `"all"` would switch on every
integration installed on the machine (uploads, logins in batch jobs) and raises on 5.2.0. MIGRATION.md says how to
keep reporting. Applies to TrainingArguments-like calls (and same-scope `**` dicts), as transformers-training-args.
"""

from __future__ import annotations

import re

from codemods import hf
from codemods.rule import FileContext, Rule
from codemods.rules._trainers import ConfigFields, values

FIELDS = (
    values(
        "report_to",
        {None: "none"},
        message='report_to=None -> "none" (None meant every installed integration on 4.x; write "wandb" to report)',
    ),
)


class TransformersReportTo(Rule):
    id = "transformers-report-to"
    summary = 'report_to=None -> report_to="none" (None raises from 5.0; on 4.x it meant every integration)'
    triggers = ("report_to",)
    trigger_regex = re.compile(r"\breport_to\b[\"']?[ \t]*[=:][ \t]*None\b")
    gates = ("report_to_none_rejected",)

    def check(self, ctx: FileContext) -> None:
        ConfigFields(ctx, FIELDS, hf.is_training_args_class).run()
