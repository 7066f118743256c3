"""transformers-training-args: the removed and renamed TrainingArguments fields, one table row per field.

Applies to `TrainingArguments`, `Seq2SeqTrainingArguments`, every TRL training config (they subclass
TrainingArguments) and the user's subclasses of them (a subclass that declares the field itself keeps it), to
`dataclasses.replace(args, ...)`, to the keys of same-scope dicts passed with `**`, and to attribute reads/writes on
objects typed as one (constructor, annotation, `HfArgumentParser(...).parse_*` unpacking, `self.args` in a Trainer
subclass, `trainer.args`). Each field has its own gate (codemods.rules._trainers.Field):

- renamed everywhere: `evaluation_strategy` -> `eval_strategy` (4.41; both given: the old value under the new
  name, as 4.41-4.50 let the old one win), `no_cuda` -> `use_cpu`, `per_gpu_*` -> `per_device_*`,
  `push_to_hub_token` -> `hub_token`, `push_to_hub_model_id` -> `hub_model_id`, `torchdynamo` ->
  `torch_compile_backend`; `include_inputs_for_metrics=True` -> `include_for_metrics=["inputs"]` (4.46);
  `adafactor=True` -> `optim="adafactor"`; `optim="adamw_hf"` -> `"adamw_torch"`, `"adamw_apex_fused"` ->
  `"adamw_torch_fused"`;
- from a 5.0 target: the fields with no successor are dropped (a computed value is reported), `warmup_ratio=r` ->
  `warmup_steps=r` (a fraction of the run only from 5.0: on 4.45-4.57 it raises, on older 4.x it meant 0.03
  steps); `logging_dir=` is reported (ignored from 5.0, TypeError from 5.15: the TENSORBOARD_LOGGING_DIR variable);
- from a 5.2 target: `group_by_length=X` -> `train_sampling_strategy=...`.
Reads of fields that are gone at the target are reported. Left alone: unrelated dataclasses, argparse flags and the
user's functions with same-named parameters, CLI/YAML flags (out of reach of a Python rule).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

from codemods import hf
from codemods.rule import FileContext, Rule
from codemods.rules._trainers import (
    Change,
    ConfigFields,
    Field,
    Item,
    flag,
    removed,
    renamed,
    reported,
    values,
)

V5 = "training_args_v5_removals"
WARMUP_GATE = "warmup_steps_fraction"


class _WarmupRatio(Field):
    """`warmup_ratio=r` -> `warmup_steps=r`. Beside `warmup_steps=`: 4.x let a `warmup_steps > 0` win, 5.0-5.14 let
    the ratio override it: the value 4.x honoured is kept."""

    def __init__(self) -> None:
        super().__init__(
            "warmup_ratio",
            WARMUP_GATE,
            read="!warmup_ratio is gone from 5.15: warmup_steps < 1 is the fraction (5.0+) | gone from 5.15: use warmup_steps",
        )

    def plan(self, item: Item, siblings: Mapping[str, Item]):
        value = item.value
        if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)) and value.value >= 1:
            return (
                "warmup_ratio >= 1: warmup_steps=1.0 would mean one step on 5.x; write the steps",
                "ratio >= 1: write warmup_steps as a number of steps",
            )
        steps = siblings.get("warmup_steps")
        if steps is None:
            return [(item, Change("warmup_steps", message="warmup_ratio= -> warmup_steps= (a fraction on 5.x)"))]
        given = steps.value.value if isinstance(steps.value, ast.Constant) else None
        if not isinstance(given, (int, float)) or isinstance(given, bool) or steps.container is not item.container:
            return (
                "warmup_ratio= beside a computed warmup_steps=: keep one (warmup_steps < 1 is the ratio on 5.x)",
                "keep one of warmup_ratio= and warmup_steps=",
            )
        if given > 0:  # 4.x: the steps won
            return [(item, Change(None, message="warmup_ratio= dropped (warmup_steps > 0 won on 4.x)"))]
        return [
            (steps, Change(None, message="warmup_steps=0 dropped")),
            (item, Change("warmup_steps", message="warmup_ratio= -> warmup_steps= (a fraction on 5.x)")),
        ]


_NO_SUCCESSOR = (
    "overwrite_output_dir", "save_safetensors", "use_mps_device", "fp16_backend", "half_precision_backend",
    "jit_mode_eval", "tpu_num_cores", "use_legacy_prediction_loop", "past_index", "ray_scope", "mp_parameters",
    "tpu_metrics_debug", "fp16_opt_level",
)  # fmt: skip

FIELDS: tuple[Field, ...] = (
    renamed("evaluation_strategy", "eval_strategy", "eval_strategy_kwarg", keep_old_value=True),
    renamed("no_cuda", "use_cpu"),
    renamed("per_gpu_train_batch_size", "per_device_train_batch_size", keep_old_value=True),
    renamed("per_gpu_eval_batch_size", "per_device_eval_batch_size", keep_old_value=True),
    renamed("push_to_hub_token", "hub_token", keep_old_value=True),
    renamed("push_to_hub_model_id", "hub_model_id", unless=("push_to_hub_organization",)),
    renamed("torchdynamo", "torch_compile_backend", keep_old_value=True),
    flag(
        "include_inputs_for_metrics", "include_for_metrics", '["inputs"]', "[]", "include_for_metrics_field"
    ).with_read(
        "!include_inputs_for_metrics is gone in 5.0: read include_for_metrics | gone in 5.0: read include_for_metrics",
        V5,
    ),
    flag(
        "adafactor",
        "optim",
        '"adafactor"',
        conflict="replace",
        computed='computed adafactor=: write optim="adafactor" where it is True | computed adafactor=: set optim=',
    ).with_read('!adafactor is gone in 5.0: test optim == "adafactor" | gone in 5.0: test optim', V5),
    values("optim", {"adamw_hf": "adamw_torch", "adamw_apex_fused": "adamw_torch_fused"}),
    *(removed(name, V5) for name in _NO_SUCCESSOR),
    reported(
        "push_to_hub_organization",
        V5,
        (
            'push_to_hub_organization is removed in 5.0: write hub_model_id="<org>/<name>"',
            "removed in 5.0: write hub_model_id=",
        ),
        read="!push_to_hub_organization is gone in 5.0: read hub_model_id | gone in 5.0: read hub_model_id",
    ),
    reported(
        "fsdp_min_num_params",
        V5,
        (
            'fsdp_min_num_params is removed in 5.0: pass fsdp_config={"min_num_params": ...}',
            "removed in 5.0: move it into fsdp_config",
        ),
        read="!fsdp_min_num_params is gone in 5.0: read fsdp_config | gone in 5.0: read fsdp_config",
    ),
    reported(
        "fsdp_transformer_layer_cls_to_wrap",
        V5,
        (
            'removed in 5.0: pass fsdp_config={"transformer_layer_cls_to_wrap": [...]}',
            "removed in 5.0: move it into fsdp_config",
        ),
        read="!fsdp_transformer_layer_cls_to_wrap is gone in 5.0: read fsdp_config | gone in 5.0: read fsdp_config",
    ),
    reported(
        "include_tokens_per_second",
        V5,
        (
            "include_tokens_per_second is removed in 5.0: drop it (throughput is logged differently)",
            "removed in 5.0: drop it",
        ),
        read="!include_tokens_per_second is gone in 5.0",
    ),
    _WarmupRatio(),
    flag(
        "group_by_length",
        "train_sampling_strategy",
        '"group_by_length"',
        '"random"',
        "train_sampling_strategy",
    ).with_read(
        '!group_by_length is gone from 5.2: test train_sampling_strategy == "group_by_length" | gone from 5.2: test train_sampling_strategy'
    ),
    reported(
        "logging_dir",
        "tensorboard_logging_dir_env",
        (
            "logging_dir is ignored from 5.0 (TypeError from 5.15): set the TENSORBOARD_LOGGING_DIR env var",
            "ignored from 5.0: set env TENSORBOARD_LOGGING_DIR",
        ),
        read="!logging_dir is gone from 5.15: read os.environ['TENSORBOARD_LOGGING_DIR'] | gone from 5.15: read env "
        "TENSORBOARD_LOGGING_DIR",
    ),
)
_NAMES = tuple(dict.fromkeys(f.old for f in FIELDS))
_ALTERNATIVES = "|".join(t for t in _NAMES if t != "optim")
# a keyword (`name=`), a dict key (`"name"`) or an attribute (`.name`): not a dataclass field or an argparse flag
_SHAPE = re.compile(
    rf"\b(?:{_ALTERNATIVES})[ \t]*=(?!=)|[\"'](?:{_ALTERNATIVES})[\"']|\.(?:{_ALTERNATIVES})\b"
    r"|[\"']adamw_(?:hf|apex_fused)[\"']"
)


class TransformersTrainingArgs(Rule):
    id = "transformers-training-args"
    summary = "removed/renamed TrainingArguments fields (eval_strategy, use_cpu, per_device_*, warmup_steps, ...)"
    triggers = tuple(t for t in _NAMES if t != "optim") + ("adamw_hf", "adamw_apex_fused")
    trigger_regex = _SHAPE
    item_gates = tuple(dict.fromkeys(g for f in FIELDS for g in (f.gate, f.read_gate) if g is not None))

    def check(self, ctx: FileContext) -> None:
        ConfigFields(ctx, FIELDS, hf.is_training_args_class).run()
