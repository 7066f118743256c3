"""TRL helpers that were removed without a successor, kept with their old contracts, and `trl_config`.

An old TRL script runs again when its import of one of these names points here instead (`python -m compat.codemod`
does that); each removed helper warns (FutureWarning) what to write instead. MIGRATION.md#compat-trl-helpers
lists them and how they differ from TRL's.
torch, transformers and TRL are imported inside the functions, so `import compat` stays cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import deprecated

from compat.prepare import warn

# TRL 0.11-0.26 `trl.trainer.utils.SIMPLE_CHAT_TEMPLATE` (0.27-1.0: `trl.experimental.utils`), the template TRL's
# DPO example scripts set on a tokenizer that has none. A string, so nothing to warn about.
SIMPLE_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize() + ': ' + message['content'] + '\n\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# TRL's ChatML special tokens and template (`trl.models.utils.ChatMlSpecialTokens`, up to 0.25).
_CHATML_BOS, _CHATML_EOS = "<|im_start|>", "<|im_end|>"
_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    f"{{{{'{_CHATML_BOS}' + message['role'] + '\n' + message['content'] + '{_CHATML_EOS}' + '\n'}}}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    f"{{{{ '{_CHATML_BOS}assistant\n' }}}}"
    "{% endif %}"
)


def _message(old: str, new: str) -> str:
    return f"{old} was removed from TRL; compat keeps it for old scripts. {new} See MIGRATION.md#compat-trl-helpers."


def _deprecated(old: str, new: str) -> None:
    # Through the warnings machinery at the caller's line: the default filters show it once per call site.
    warn(_message(old, new), FutureWarning)


def _deprecated_dataclass(old: str, new: str) -> None:
    # 1 = this line, 2 = __post_init__, 3 = the generated __init__ ("<string>"), 4 = whoever constructs the
    # instance (the script, or HfArgumentParser).
    warnings.warn(_message(old, new), FutureWarning, stacklevel=4)


# category=None: type checkers and IDEs flag the names (PEP 702); the runtime warning is our own.
@deprecated("Pass device_map=None, or {'': PartialState().local_process_index} on CUDA/XPU", category=None)
def get_kbit_device_map() -> dict[str, int] | None:
    """TRL <= 1.7's `get_kbit_device_map()`: `{"": local process index}` when CUDA or XPU is available, else None
    (the device map for a quantized model, one whole copy per process)."""
    _deprecated(
        "get_kbit_device_map()", "Write device_map={'': PartialState().local_process_index} (on CUDA/XPU) instead."
    )
    import torch
    from accelerate import PartialState
    from transformers.utils import is_torch_xpu_available

    if torch.cuda.is_available() or is_torch_xpu_available():
        return {"": PartialState().local_process_index}
    return None


@deprecated("Use trl.clone_chat_template (it returns 3 values), or set tokenizer.chat_template", category=None)
def setup_chat_format(
    model: Any, tokenizer: Any, format: str | None = "chatml", resize_to_multiple_of: int | None = None
) -> tuple[Any, Any]:
    """TRL <= 0.25's `setup_chat_format`: gives `tokenizer` ChatML (`<|im_start|>` as bos, `<|im_end|>` as eos and
    pad, both added as special tokens, and the ChatML chat template), resizes the model's embeddings to the new
    vocabulary (rounded up to `resize_to_multiple_of`) and points the model's config and generation config at the new
    token ids. Returns `(model, tokenizer)`, both modified in place. Raises ValueError if `tokenizer` already has a
    chat template, or for a format other than "chatml"."""
    _deprecated(
        "setup_chat_format(model, tokenizer)",
        "Set tokenizer.chat_template yourself, or use trl.clone_chat_template(model, tokenizer, source), which "
        "returns (model, tokenizer, added_token_ids).",
    )
    if tokenizer.chat_template is not None:
        raise ValueError(
            "Chat template is already added to the tokenizer. If you want to overwrite it, please set it to None"
        )
    if format != "chatml":
        raise ValueError(f"Format {format} not available. Please use one of dict_keys(['chatml'])")
    tokenizer.eos_token = _CHATML_EOS
    tokenizer.pad_token = _CHATML_EOS
    tokenizer.bos_token = _CHATML_BOS
    tokenizer.add_special_tokens({"additional_special_tokens": [_CHATML_BOS, _CHATML_EOS]})
    tokenizer.chat_template = _CHATML_TEMPLATE
    # len(tokenizer.vocab), as TRL 0.17+ did: it counts added tokens the same way on every tokenizer class.
    model.resize_token_embeddings(new_num_tokens=len(tokenizer.vocab), pad_to_multiple_of=resize_to_multiple_of)
    if getattr(model, "config", None) is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        model.config.bos_token_id = tokenizer.bos_token_id
        model.config.eos_token_id = tokenizer.eos_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.bos_token_id = tokenizer.bos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


@deprecated("Use tokenizer.apply_chat_template(messages, tokenize=False) in your own map function", category=None)
def conversations_formatting_function(tokenizer: Any, messages_field: str, tools: list | None = None):
    """TRL <= 0.26's `trl.extras.dataset_formatting.conversations_formatting_function`: a function that renders
    `example[messages_field]` (one conversation, or a batch of them) with the tokenizer's chat template."""
    _deprecated(
        "conversations_formatting_function(tokenizer, field)",
        "Call tokenizer.apply_chat_template(example[field], tokenize=False) in your own map function instead.",
    )

    def format_dataset(examples):
        if isinstance(examples[messages_field][0], list):
            return [tokenizer.apply_chat_template(m, tokenize=False, tools=tools) for m in examples[messages_field]]
        return tokenizer.apply_chat_template(examples[messages_field], tokenize=False, tools=tools)

    return format_dataset


def trl_config(config_class: type, args: Any, **fields: Any) -> Any:
    """`args` (a TrainingArguments or any TRL config) as a new `config_class` (SFTConfig, DPOConfig, ...) with `fields`
    set on it: `SFTTrainer(args=compat.trl_config(SFTConfig, training_args, max_length=512))`.

    It converts the way TRL's trainers convert a plain TrainingArguments (every field through `to_dict()`, the
    config built again so its checks run) and keeps the real tokens that `to_dict()` masks. A field given as None
    keeps the config's default: on the old trainers None meant "not given" for every argument that moved into the
    configs (`dataset_text_field=None` was "detect the format"; on today's SFTConfig it is a KeyError). Fields that
    `config_class` does not know raise TypeError, as the TRL trainer would. `args` is not modified."""
    import dataclasses

    values = args.to_dict()
    for name in values:
        if name.endswith("_token"):  # to_dict() writes "<HUB_TOKEN>" in place of every *_token value
            values[name] = getattr(args, name)
    known = {f.name for f in dataclasses.fields(config_class) if f.init}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"{config_class.__name__} has no field {', '.join(unknown)}: see MIGRATION.md#trl-sft-config")
    # Keep only what the new class accepts: a TRL config's own fields do not all exist on another one.
    values = {name: value for name, value in values.items() if name in known}
    values.update({name: value for name, value in fields.items() if value is not None})
    return config_class(**values)


# TRL 0.8's script-argument dataclasses (`trl.commands.cli_utils`, gone in 0.13). Their 0.11 successors
# (SFTScriptArguments, DPOScriptArguments, RewardScriptArguments) became `trl.ScriptArguments`; these two have
# fields that moved into SFTConfig/DPOConfig since, so a script that reads them needs this copy to keep its CLI.
# Without their `config` field: today's TrlParser reads `--config` itself and refuses a dataclass field of that name.
# `gradient_checkpointing_use_reentrant` is still accepted but nothing reads it (TRL 0.8's parser copied it into
# gradient_checkpointing_kwargs; its default, False, is transformers 5's default).
@deprecated("Use trl.ScriptArguments and set the SFT fields on SFTConfig", category=None)
@dataclass
class SftScriptArguments:
    """TRL 0.8's `SftScriptArguments` (same fields, defaults and CLI flags)."""

    dataset_name: str = field(default="timdettmers/openassistant-guanaco", metadata={"help": "the dataset name"})
    dataset_text_field: str = field(default=None, metadata={"help": "the text field of the dataset"})
    dataset_train_name: str = field(default="train", metadata={"help": "the name of the training set of the dataset"})
    dataset_test_name: str = field(default="test", metadata={"help": "the name of the training set of the dataset"})
    max_seq_length: int = field(default=512, metadata={"help": "The maximum sequence length for SFT Trainer"})
    packing: bool = field(default=False, metadata={"help": "Whether to apply data packing or not during training"})
    gradient_checkpointing_use_reentrant: bool = field(
        default=False, metadata={"help": "Whether to apply `use_reentrant` for gradient_checkpointing"}
    )

    def __post_init__(self):
        _deprecated_dataclass(
            "trl.commands.cli_utils.SftScriptArguments", "Use trl.ScriptArguments and SFTConfig's fields."
        )


@deprecated("Use trl.ScriptArguments and set the DPO fields on DPOConfig", category=None)
@dataclass
class DpoScriptArguments:
    """TRL 0.8's `DpoScriptArguments` (same fields, defaults and CLI flags)."""

    dataset_name: str = field(default=None, metadata={"help": "the dataset name"})
    beta: float = field(default=0.1, metadata={"help": "the beta parameter for DPO loss"})
    max_length: int = field(default=512, metadata={"help": "max length of each sample"})
    max_prompt_length: int = field(default=128, metadata={"help": "max length of each sample's prompt"})
    max_target_length: int = field(
        default=128, metadata={"help": "Only used for encoder decoder model. Max target of each sample's prompt"}
    )
    sanity_check: bool = field(default=False, metadata={"help": "only train on 1000 samples"})
    ignore_bias_buffers: bool = field(
        default=False,
        metadata={
            "help": "debug argument for distributed training;"
            "fix for DDP issues with LM bias/mask buffers - invalid scalar type,`inplace operation. See"
            "https://github.com/huggingface/transformers/issues/22482#issuecomment-1595790992"
        },
    )
    generate_during_eval: bool = field(default=False, metadata={"help": "Generate during evaluation"})
    gradient_checkpointing_use_reentrant: bool = field(
        default=False, metadata={"help": "Whether to apply `use_reentrant` for gradient_checkpointing"}
    )

    def __post_init__(self):
        _deprecated_dataclass(
            "trl.commands.cli_utils.DpoScriptArguments", "Use trl.ScriptArguments and DPOConfig's fields."
        )
