"""trl-dpo-config: `DPOTrainer(beta=, max_length=, loss_type=, ...)` -> the `DPOConfig` passed as `args`, and the
DPO/KTO/ORPO/CPO/GRPO config fields that TRL removed or renamed.

TRL 0.9.2 moved the DPO knobs from `DPOTrainer`'s keywords into `DPOConfig` (gate `trl_trainer_configs`; TypeError
from 0.13). The keywords go where trl-sft-config puts the SFT ones (`TrainerMoves`: an inline or once-bound
`DPOConfig(...)`, else `compat.trl_config(DPOConfig, <args>, ...)`, no `args` reported); a positional argument after
`ref_model` is reported (it was `beta` up to 0.12 and is `args` today).

Fields with no successor are dropped (so the script runs) with a TODO naming the mechanism TRL points to, each from
the version that removed it: DPOConfig `max_target_length` (0.14), `is_encoder_decoder` (0.15), `padding_value`
(0.26) and the 0.29 set (`max_prompt_length`, `max_completion_length`, `reference_free`, `label_pad_token_id`,
`generate_during_eval`, the adapter/ref-model options, `use_logits_to_keep`, `tools`, `base_model_attribute_name`);
`rpo_alpha=a` becomes `loss_type=[<loss_type>, "sft"], loss_weights=[1.0, a]` (TRL 0.28's own equivalence) when
the loss type is a literal or absent and `a` a number, else it is dropped with a TODO. KTOConfig/ORPOConfig/
CPOConfig: `max_prompt_length`, `max_completion_length`, `label_pad_token_id`, `padding_value` (0.27/0.28).
GRPOConfig: `vllm_guided_decoding_regex` -> `vllm_structured_outputs_regex`, `use_liger_loss` -> `use_liger_kernel`
(0.28), `wandb_log_unique_prompts` -> `log_unique_prompts` (0.27), `max_prompt_length` (0.28) and the in-process
vLLM options (0.18) dropped. Applies to the calls, the user's subclasses, `dataclasses.replace`, same-scope dicts
passed with `**` (a dict from outside the scope is reported) and attribute reads (reported when the field is gone).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

import libcst as cst

from codemods.analysis import string_value
from codemods.rule import FileContext, Rule
from codemods.rules._trainers import Field, Item, renamed
from codemods.rules.trl_sft_config import CONFIGS_GATE, Gone, TodoConfigFields, TrainerMoves, trl_class

MAX_TARGET = "trl_dpo_max_target_length_removed"
ENCODER_DECODER = "trl_dpo_is_encoder_decoder_removed"
PADDING_VALUE = "trl_dpo_padding_value_removed"
DPO_029 = "trl_dpo_fields_removed"
KTO_027 = "trl_kto_prompt_length_removed"
PROMPT_028 = "trl_prompt_length_removed"
LOG_UNIQUE = "trl_grpo_log_unique_prompts"
VLLM_DEVICE = "trl_grpo_vllm_device_removed"

DPO_MOVED = (
    "beta", "label_smoothing", "loss_type", "label_pad_token_id", "padding_value", "truncation_mode", "max_length",
    "max_prompt_length", "max_target_length", "is_encoder_decoder", "disable_dropout", "generate_during_eval",
    "precompute_ref_log_probs", "dataset_num_proc", "model_init_kwargs", "ref_model_init_kwargs",
    "model_adapter_name", "ref_adapter_name", "reference_free", "force_use_ref_model",
)  # fmt: skip

_PROMPT = ("filter long prompts in the data", "filter long prompts in data", "filter long prompts")
_COMPLETION = ("max_length bounds both",)
_LABEL_PAD = ("the collator pads labels",)
_PAD = ("set tokenizer.pad_token instead", "the tokenizer's pad token")


def _gone_029(name: str, *hints: str) -> Gone:
    return Gone(name, DPO_029, "TRL 0.29", *hints)


DPO_FIELDS: tuple[Field, ...] = (
    Gone("max_target_length", MAX_TARGET, "TRL 0.14", "max_length bounds the pair"),
    Gone("is_encoder_decoder", ENCODER_DECODER, "TRL 0.15", "read from the model"),
    Gone("padding_value", PADDING_VALUE, "TRL 0.26", *_PAD),
    _gone_029("max_prompt_length", *_PROMPT),
    _gone_029("max_completion_length", *_COMPLETION),
    _gone_029("reference_free", "for a reference-free loss use CPOTrainer", "reference-free is CPOTrainer"),
    _gone_029("label_pad_token_id", *_LABEL_PAD),
    _gone_029("generate_during_eval", "log samples in a callback"),
    _gone_029("model_adapter_name", "only the default adapter is trained", "default adapter only"),
    _gone_029("ref_adapter_name", "the trainer finds the reference adapter", "handled by the trainer"),
    _gone_029("ref_model_init_kwargs", "load ref_model yourself and pass it", "load ref_model yourself"),
    _gone_029("force_use_ref_model", "a ref_model you pass is always used", "a given ref_model is used"),
    _gone_029("use_logits_to_keep", "no longer used by the trainer", "no longer used"),
    _gone_029("tools", "put the tools in the dataset", "tools go in the dataset"),
    _gone_029("base_model_attribute_name", "the model's get_decoder() is used", "get_decoder() is used"),
    _gone_029("rpo_alpha", 'loss_type += "sft", weighted by it in loss_weights', 'loss_type += "sft", weighted by it'),
)
KTO_FIELDS: tuple[Field, ...] = (
    Gone("max_prompt_length", KTO_027, "TRL 0.27", *_PROMPT),
    Gone("max_completion_length", KTO_027, "TRL 0.27", *_COMPLETION),
    Gone("label_pad_token_id", PROMPT_028, "TRL 0.28", *_LABEL_PAD),
    Gone("padding_value", PROMPT_028, "TRL 0.28", *_PAD),
)
ORPO_FIELDS: tuple[Field, ...] = (
    Gone("max_prompt_length", PROMPT_028, "TRL 0.28", *_PROMPT),
    Gone("label_pad_token_id", PROMPT_028, "TRL 0.28", *_LABEL_PAD),
)
CPO_FIELDS: tuple[Field, ...] = (*ORPO_FIELDS, Gone("padding_value", PROMPT_028, "TRL 0.28", *_PAD))
_VLLM = ("use `trl vllm-serve` or vllm_mode", "trl vllm-serve or vllm_mode")
GRPO_FIELDS: tuple[Field, ...] = (
    Gone("max_prompt_length", PROMPT_028, "TRL 0.28", *_PROMPT),
    renamed("vllm_guided_decoding_regex", "vllm_structured_outputs_regex", PROMPT_028),
    renamed("use_liger_loss", "use_liger_kernel", PROMPT_028),
    renamed("wandb_log_unique_prompts", "log_unique_prompts", LOG_UNIQUE),
    *(
        Gone(name, VLLM_DEVICE, "TRL 0.18", *_VLLM)
        for name in ("vllm_device", "vllm_dtype", "vllm_max_model_len", "vllm_enable_prefix_caching")
    ),
)
TABLES: tuple[tuple[str, tuple[Field, ...]], ...] = (
    ("DPOConfig", DPO_FIELDS),
    ("KTOConfig", KTO_FIELDS),
    ("ORPOConfig", ORPO_FIELDS),
    ("CPOConfig", CPO_FIELDS),
    ("GRPOConfig", GRPO_FIELDS),
)
_ALL_FIELDS = tuple(f for _, fields in TABLES for f in fields)
_NAMES = tuple(dict.fromkeys((*DPO_MOVED, *(f.old for f in _ALL_FIELDS))))
_CLASSES = re.compile(r"\b(?:DPO|KTO|ORPO|CPO|GRPO)(?:Config|Trainer)\b")
_FIELDS = re.compile(r"\b(?:" + "|".join(_NAMES) + r")\b")


class _DpoConfigFields(TodoConfigFields):
    """The DPOConfig table, with `rpo_alpha=a` rewritten into the loss list where that is exact."""

    def plan_items(self, items: Mapping[str, Item], info) -> None:
        rpo = items.get("rpo_alpha")
        if rpo is not None and "rpo_alpha" in self.fields and self.rpo(rpo, items):
            items = {k: v for k, v in items.items() if k not in ("rpo_alpha", "loss_type")}
        super().plan_items(items, info)

    def rpo(self, item: Item, items: Mapping[str, Item]) -> bool:
        value = item.value
        if not (isinstance(value, ast.Constant) and type(value.value) in (int, float)) or "loss_weights" in items:
            return False
        loss = items.get("loss_type")
        if loss is not None and string_value(loss.value) is None:
            return False
        kind = string_value(loss.value) if loss is not None else "sigmoid"
        weight = self.ctx.analysis.segment(value)
        losses = cst.parse_expression(f'["{kind}", "sft"]')
        weights = cst.parse_expression(f"[1.0, {weight}]")

        def fn(call: cst.Call) -> cst.Call:
            args = []
            for arg in call.args:
                name = arg.keyword.value if arg.keyword is not None else None
                if name == "loss_type":
                    args.append(arg.with_changes(value=losses))
                elif name == "rpo_alpha":
                    if loss is None:
                        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                        args.append(arg.with_changes(keyword=cst.Name("loss_type"), value=losses, comma=comma))
                    args.append(arg.with_changes(keyword=cst.Name("loss_weights"), value=weights))
                else:
                    args.append(arg)
            return call.with_changes(args=args)

        self.ctx.edit(item.container, fn, f'rpo_alpha= -> loss_type=[..., "sft"], loss_weights=[1.0, {weight}]',
                      at=item.node)  # fmt: skip
        return True


class TrlDpoConfig(Rule):
    id = "trl-dpo-config"
    summary = "DPOTrainer(beta=, ...) -> the DPOConfig passed as args; removed/renamed DPO/KTO/ORPO/CPO/GRPO fields"
    # the classes first (cheap, selective), then the field names
    triggers = ("DPOTrainer", "DPOConfig", "KTOConfig", "ORPOConfig", "CPOConfig", "GRPOConfig")
    trigger_regex = _CLASSES
    gates = (CONFIGS_GATE,)
    item_gates = tuple(dict.fromkeys(g for f in _ALL_FIELDS for g in (f.gate, f.read_gate) if g is not None))

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        return _FIELDS.search(source) is not None

    def check(self, ctx: FileContext) -> None:
        TrainerMoves(ctx, frozenset({"DPOTrainer"}), "DPOConfig", DPO_MOVED, DPO_FIELDS, max_positional=2).run()
        for name, fields in TABLES:
            cls = _DpoConfigFields if name == "DPOConfig" else TodoConfigFields
            cls(ctx, fields, trl_class({name})).run()
