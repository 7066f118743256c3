"""transformers-hf-argparser-collision (diagnostics only): a script's dataclass field that collides with a field
TrainingArguments gained since 4.40, in the same `HfArgumentParser`.

`HfArgumentParser((ModelArguments, TrainingArguments))` adds one option per field of every dataclass; a field of the
script's own dataclass with the name of a newer TrainingArguments field (`use_cache` in 5.0, `project` in 4.57,
`train_sampling_strategy` in 5.2, ...) makes the parser raise `argparse.ArgumentError: conflicting option strings`
at start-up on the transformers that added it. Renaming the field would change the script's command line, so
nothing is rewritten: the colliding fields are reported (at the field; at the parser call for a class defined in
another file of the project).
"""

from __future__ import annotations

import ast
import re

from codemods import hf
from codemods.rule import FileContext, Rule

# TrainingArguments fields added after 4.40 (names only; their versions are in MIGRATION.md)
NEW_FIELDS = frozenset(
    {
        "batch_eval_metrics", "eval_strategy", "restore_callback_states_from_checkpoint", "eval_on_start",
        "eval_use_gather_object", "torch_empty_cache_steps", "use_liger_kernel", "include_for_metrics",
        "average_tokens_across_devices", "hub_revision", "liger_kernel_config", "parallelism_config", "project",
        "trackio_space_id", "use_cache", "enable_jit_checkpoint", "train_sampling_strategy", "ddp_static_graph",
        "trackio_bucket_id", "trackio_static_space_id", "dataloader_in_order", "dataloader_multiprocessing_context",
        "activation_checkpointing", "activation_checkpointing_kwargs",
    }
)  # fmt: skip


_FIELD_SHAPE = re.compile(r"^[ \t]+(?:" + "|".join(sorted(NEW_FIELDS)) + r")[ \t]*:", re.MULTILINE)
# `from .hparams import ModelArguments`: a dataclass of another file of the project
_ARGUMENTS_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+(?!transformers\b|trl\b)[\w.]+[ \t]+import\b[^\n]*Arguments\b", re.MULTILINE
)


class TransformersHfArgparserCollision(Rule):
    id = "transformers-hf-argparser-collision"
    summary = "reports a dataclass field that collides with a newer TrainingArguments field in one HfArgumentParser"
    triggers = ("HfArgumentParser",)

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        return _FIELD_SHAPE.search(source) is not None or _ARGUMENTS_IMPORT.search(source) is not None

    def check(self, ctx: FileContext) -> None:
        a = ctx.analysis
        for call in a.calls:
            kind = ctx.kinds.kind_of(call.func)
            if kind is None or kind.what != "ref" or hf.last(kind.qname) != "HfArgumentParser" or not call.args:
                continue
            value = call.args[0]
            elements = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
            kinds = [ctx.kinds.kind_of(el) for el in elements]
            if not any(k is not None and k.what == "ref" and hf.is_training_args_class(k.qname) for k in kinds):
                continue
            for k in kinds:
                if k is None or k.what != "local" or k.cls is None:
                    continue
                for stmt in k.cls.node.body:
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                        name = stmt.target.id
                        if name not in NEW_FIELDS:
                            continue
                        message = (
                            f"{k.cls.name}.{name} collides with TrainingArguments.{name} in this HfArgumentParser "
                            "(conflicting option strings): rename the field"
                        )
                        shorter = (
                            f"{name} is a TrainingArguments field too; rename it",
                            "a TrainingArguments field too",
                        )
                        ctx.diagnose(stmt if k.cls.analysis is a else call, message, *shorter)
