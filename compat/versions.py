"""THE table of upstream behaviour changes ("gates") that the preparation and the codemod depend on.

Each gate says what changed, the first release with the new behaviour, where upstream said so, and when we may
delete the gate. Installed versions come from package metadata: nothing here imports torch, transformers, peft or
bitsandbytes. `python -m compat.versions` prints the installed stack and which side of every gate it is on.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import metadata

from packaging.version import Version

STACK = ("python", "torch", "transformers", "peft", "bitsandbytes", "accelerate", "trl", "libcst")


@dataclass(frozen=True)
class Gate:
    name: str
    since: tuple[tuple[str, str], ...]  # (package, first version with the new behaviour); all must hold
    old: str  # behaviour below the gate
    new: str  # behaviour from the gate on
    link: str  # upstream release, issue or PR
    delete_when: str  # the condition under which the gate (and the code behind it) can go

    @property
    def package(self) -> str:
        return "+".join(pkg for pkg, _ in self.since)

    @property
    def requirement(self) -> str:
        return ", ".join(f"{pkg}>={ver}" for pkg, ver in self.since)

    def side(self, versions: dict[str, Version | None] | None = None) -> str | None:
        """'new', 'old' (some package is below its version), or None (a package is missing, none is below)."""
        versions = versions if versions is not None else installed_versions()
        sides = []
        for pkg, ver in self.since:
            have = versions.get(pkg)
            sides.append(None if have is None else Version(have.base_version) >= Version(ver))
        if False in sides:
            return "old"
        return None if None in sides else "new"


GATES: tuple[Gate, ...] = (
    Gate(
        "dtype_kwarg",
        (("transformers", "4.56.0"),),
        "from_pretrained takes only torch_dtype=; dtype= breaks config serialisation (TypeError)",
        "dtype= is the keyword; torch_dtype= still accepted with a deprecation log",
        "https://github.com/huggingface/transformers/releases/tag/v4.56.0",
        "the minimum supported transformers is >= 4.56",
    ),
    Gate(
        "default_dtype_auto",
        (("transformers", "5.0.0"),),
        "no dtype given -> float32",
        "no dtype given -> 'auto' (the checkpoint's dtype)",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "never: always passing a dtype is right on both sides",
    ),
    Gate(
        "load_in_kbit_removed",
        (("transformers", "5.0.0"),),
        "from_pretrained(load_in_4bit=/load_in_8bit=) accepted with a deprecation log",
        "those keywords raise TypeError; pass quantization_config=BitsAndBytesConfig(...)",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.0 (quantization_config works everywhere we support)",
    ),
    Gate(
        "non_reentrant_default",
        (("transformers", "5.0.0"),),
        "gradient checkpointing defaults to use_reentrant=True",
        "gradient checkpointing defaults to use_reentrant=False",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.0",
    ),
    Gate(
        "activation_checkpointing_names",
        (("transformers", "5.23.0"),),
        "only gradient_checkpointing_enable/_disable, is_gradient_checkpointing, TrainingArguments.gradient_checkpointing*",
        "activation_checkpointing* names; the old ones are aliases that emit FutureWarning (removed in v6)",
        "https://github.com/huggingface/transformers/releases/tag/v5.23.0",
        "the minimum supported transformers is >= 5.23",
    ),
    Gate(
        "input_grads_builtin",
        (("transformers", "5.0.0"),),
        "Trainer + get_peft_model + gradient checkpointing fails: no input requires grad (transformers #42489)",
        "the input-grad hook is registered for text models; calling enable_input_require_grads() again is harmless",
        "https://github.com/huggingface/transformers/issues/42489",
        "the minimum supported transformers is >= 5.0 and multimodal models are covered upstream",
    ),
    Gate(
        "hybrid_cache_removed",
        (("transformers", "5.0.0"),),
        "transformers.HybridCache exists",
        "HybridCache is gone, so `import peft` fails for peft 0.16.0-0.17.1 (compat patches an alias back in)",
        "https://github.com/huggingface/peft/pull/2735",
        "the minimum supported peft is >= 0.18",
    ),
    Gate(
        "bnb_cpu_kbit",
        (("transformers", "4.53.0"), ("bitsandbytes", "0.47.0")),
        "bitsandbytes 4-bit/8-bit layers fail on the CPU",
        "bitsandbytes 4-bit (nf4/fp4) and 8-bit run on the CPU",
        "https://github.com/bitsandbytes-foundation/bitsandbytes/releases/tag/0.47.0",
        "the minimum supported transformers is >= 4.53 and bitsandbytes >= 0.47",
    ),
    Gate(
        "autocast_adapter_dtype_kwarg",
        (("peft", "0.12.0"),),
        "get_peft_model has no autocast_adapter_dtype keyword",
        "autocast_adapter_dtype keyword, default True: fp16/bf16 adapters are upcast to fp32",
        "https://github.com/huggingface/peft/pull/1706",
        "the minimum supported peft is >= 0.12 (it is today: the gate only guards the keyword)",
    ),
    Gate(
        "autocast_adapter_dtype_4bit",
        (("peft", "0.19.0"),),
        "autocast_adapter_dtype=False is ignored on 4-bit bases: adapters stay fp32",
        "on 4-bit bases adapters take the compute dtype when autocast_adapter_dtype=False (8-bit still fp32)",
        "https://github.com/huggingface/peft/issues/2889",
        "never on its own: the bf16 cast of step 6 is wanted on both sides (QLoRA paper)",
    ),
    Gate(
        "int8_training_removed",
        (("peft", "0.10.0"),),
        "prepare_model_for_int8_training is a deprecated alias",
        "prepare_model_for_int8_training is gone; use prepare_model_for_kbit_training",
        "https://github.com/huggingface/peft/releases/tag/v0.10.0",
        "never for the codemod (old scripts keep existing); no runtime code depends on it",
    ),
    Gate(
        "kbit_training_function",
        (("peft", "0.4.0"),),
        "only prepare_model_for_int8_training exists",
        "prepare_model_for_kbit_training exists (prepare_model_for_int8_training becomes its deprecated alias)",
        "https://github.com/huggingface/peft/releases/tag/v0.4.0",
        "never for the codemod (it decides where rewriting int8 -> kbit is valid); no runtime code depends on it",
    ),
    Gate(
        "bnb_quantization_config",
        (("transformers", "4.30.0"),),
        "BitsAndBytesConfig has no load_in_4bit (8-bit only); from_pretrained(load_in_4bit=) does not exist",
        "from_pretrained(quantization_config=BitsAndBytesConfig(load_in_4bit=... / load_in_8bit=...)) works",
        "https://github.com/huggingface/transformers/releases/tag/v4.30.0",
        "never for the codemod (it decides where the load_in_kbit rewrite is valid); no runtime code depends on it",
    ),
    Gate(
        "kbit_auto_clear_cache",
        (("peft", "0.20.0"),),
        "prepare_model_for_kbit_training(model, use_gradient_checkpointing, gradient_checkpointing_kwargs)",
        "adds auto_clear_cache=; the fp32 upcast of every non-quantized fp16/bf16 parameter is unchanged",
        "https://github.com/huggingface/peft/releases/tag/v0.20.0",
        "the minimum supported peft is >= 0.20",
    ),
    Gate(
        "python_floor",
        (("transformers", "5.0.0"),),
        "transformers 4.x and peft <= 0.17 run on Python 3.9",
        "transformers 5.x and peft >= 0.18 need Python >= 3.10 (transformers 5.24: >= 3.11)",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "our own floor is already Python 3.10: informational",
    ),
    Gate(
        "cache_key_cache_removed",
        (("transformers", "4.56.0"),),
        "Cache.key_cache / Cache.value_cache exist (a compatibility view over the cache layers)",
        "they are gone (Cache.layers[i].keys/.values); code reading them fails with AttributeError",
        "https://github.com/huggingface/transformers/releases/tag/v4.56.0",
        "the minimum supported peft is >= 0.18 (its prefix tuning was the reader we guard)",
    ),
    Gate(
        "prefix_tuning_device_map",
        (("peft", "0.18.0"),),
        "prefix tuning on a model loaded with a device_map moves its virtual keys through Cache.key_cache",
        "it moves them through Cache.layers: works on every transformers (peft PR #2753)",
        "https://github.com/huggingface/peft/issues/2821",
        "the minimum supported peft is >= 0.18",
    ),
    Gate(
        "processing_class_kwarg",
        (("transformers", "4.46.0"),),
        "Trainer/Seq2SeqTrainer(tokenizer=), trainer.tokenizer; TrainerCallback events receive tokenizer=",
        "processing_class= (tokenizer= warns, TypeError from 5.0); trainer.processing_class; events receive only "
        "processing_class= (a tokenizer= parameter silently gets None)",
        "https://github.com/huggingface/transformers/pull/32385",
        "never for the codemod (old scripts keep existing); the supported floor is 4.46 already",
    ),
    Gate(
        "eval_strategy_kwarg",
        (("transformers", "4.41.0"),),
        "TrainingArguments(evaluation_strategy=) only",
        "eval_strategy=; evaluation_strategy warns (and wins over eval_strategy) until 4.50, TypeError from 4.51",
        "https://github.com/huggingface/transformers/releases/tag/v4.41.0",
        "never for the codemod (old scripts keep existing); no runtime code depends on it",
    ),
    Gate(
        "include_for_metrics_field",
        (("transformers", "4.46.0"),),
        "TrainingArguments(include_inputs_for_metrics=True)",
        "include_for_metrics=['inputs']; include_inputs_for_metrics deprecated, TypeError from 5.0",
        "https://github.com/huggingface/transformers/releases/tag/v4.46.0",
        "never for the codemod (old scripts keep existing); no runtime code depends on it",
    ),
    Gate(
        "training_args_v5_removals",
        (("transformers", "5.0.0"),),
        "TrainingArguments takes overwrite_output_dir, save_safetensors, use_mps_device, no_cuda, per_gpu_*, "
        "adafactor, push_to_hub_token, torchdynamo, ... (26 fields, most with a deprecation warning)",
        "those fields raise TypeError (unexpected keyword argument); successors use_cpu, per_device_*, hub_token, "
        "optim='adafactor', torch_compile_backend existed before; the rest have none",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.0",
    ),
    Gate(
        "warmup_steps_fraction",
        (("transformers", "5.0.0"),),
        "warmup_steps is an int (a fraction raises ValueError on 4.45-4.57); warmup_ratio= is the fraction",
        "warmup_steps < 1 is a fraction of the run; warmup_ratio warns and overrides it, TypeError from 5.15",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.0",
    ),
    Gate(
        "train_sampling_strategy",
        (("transformers", "5.2.0"),),
        "TrainingArguments(group_by_length=True)",
        "train_sampling_strategy='group_by_length' (default 'random'); group_by_length raises TypeError",
        "https://github.com/huggingface/transformers/pull/43138",
        "the minimum supported transformers is >= 5.2",
    ),
    Gate(
        "tensorboard_logging_dir_env",
        (("transformers", "5.0.0"),),
        "TrainingArguments(logging_dir=) is the TensorBoard directory",
        "logging_dir is ignored (a warning; TypeError from 5.15): the env var TENSORBOARD_LOGGING_DIR decides",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.15 (then the field is simply gone)",
    ),
    Gate(
        "report_to_none_rejected",
        (("transformers", "5.0.0"),),
        "report_to=None (the default) means every installed integration",
        "the default is 'none'; an explicit report_to=None makes Trainer(...) raise ValueError",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.0",
    ),
    Gate(
        "trainer_log_start_time",
        (("transformers", "4.47.0"),),
        "the Trainer calls self.log(logs); Trainer.log(self, logs)",
        "the Trainer calls self.log(logs, start_time); Trainer.log takes start_time",
        "https://github.com/huggingface/transformers/releases/tag/v4.47.0",
        "the minimum supported transformers is >= 4.47",
    ),
    Gate(
        "custom_loss_ga_scaling",
        (("transformers", "4.48.0"),),
        "the mean loss of a compute_loss override is never divided by gradient_accumulation_steps (gradients x GA)",
        "self.model_accepts_loss_kwargs = False (after super().__init__) makes the Trainer divide it",
        "https://github.com/huggingface/transformers/releases/tag/v4.48.0",
        "the minimum supported transformers is >= 5.19 (loss_is_scaled_for_ga alone is enough there)",
    ),
    Gate(
        "loss_is_scaled_for_ga",
        (("transformers", "5.19.0"),),
        "only model_accepts_loss_kwargs tells the Trainer whether compute_loss's result is already GA-scaled",
        "the class attribute loss_is_scaled_for_ga (False: the Trainer divides the loss by the accumulation steps)",
        "https://github.com/huggingface/transformers/releases/tag/v5.19.0",
        "the minimum supported transformers is >= 5.19",
    ),
    Gate(
        "train_sampler_dataset_arg",
        (("transformers", "4.52.0"),),
        "the Trainer calls self._get_train_sampler(); the base method takes no dataset",
        "the Trainer calls self._get_train_sampler(train_dataset); the base method takes it",
        "https://github.com/huggingface/transformers/releases/tag/v4.52.1",
        "the minimum supported transformers is >= 4.52",
    ),
    Gate(
        "create_optimizer_model_arg",
        (("transformers", "5.3.0"),),
        "Trainer.create_optimizer(self)",
        "create_optimizer(self, model=None), called with the prepared model on the delayed-optimizer path (FSDP)",
        "https://github.com/huggingface/transformers/releases/tag/v5.3.0",
        "the minimum supported transformers is >= 5.3",
    ),
    Gate(
        "tokenizer_type_mapping_v5",
        (("transformers", "5.0.0"),),
        "AutoTokenizer.from_pretrained(tokenizer_type='llama') picks a tokenizer class by model type",
        "most model types left the tokenizer mapping ('llama' raises ValueError); the checkpoint's config decides",
        "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
        "the minimum supported transformers is >= 5.0",
    ),
    # --- TRL (the codemod's TRL rules compare these with the target trl; compat's runtime does not use trl)
    Gate(
        "trl_processing_class",
        (("trl", "0.12.0"),),
        "TRL trainers take tokenizer=",
        "processing_class= on every trainer (0.12.0: SFT/DPO warn for tokenizer=, KTO/Reward/ORPO/CPO/... TypeError; "
        "0.12.1+ warn); tokenizer= raises TypeError from 0.13 (BCO, GKD, NashMD, XPO), 0.14 (KTO, CPO, OnlineDPO, "
        "RLOO), 0.15 (Reward, ORPO, PPO), 0.16 (SFT, DPO); both given: ValueError (0.12.1-0.15)",
        "https://github.com/huggingface/trl/pull/2162",
        "the minimum supported trl is >= 0.12",
    ),
    Gate(
        "trl_data_utils_processing_class",
        (("trl", "1.3.0"),),
        "trl.apply_chat_template/maybe_apply_chat_template(example, tokenizer, ...)",
        "the parameter is processing_class (no deprecation): tokenizer= or fn_kwargs={'tokenizer': ...} is a TypeError",
        "https://github.com/huggingface/trl/releases/tag/v1.3.0",
        "the minimum supported trl is >= 1.3",
    ),
    Gate(
        "trl_trainer_configs",
        (("trl", "0.9.2"),),
        "SFTTrainer(max_seq_length=, packing=, dataset_text_field=, ...) and DPOTrainer(beta=, max_length=, ...) "
        "keywords; there are no SFTConfig/DPOConfig",
        "SFTConfig/DPOConfig carry them (the trainer keywords warn); the keywords raise TypeError from 0.13.0",
        "https://github.com/huggingface/trl/pull/1530",
        "the minimum supported trl is >= 0.13",
    ),
    Gate(
        "trl_sft_max_length",
        (("trl", "0.16.0"),),
        "SFTConfig(max_seq_length=)",
        "SFTConfig(max_length=); max_seq_length warns, TypeError from 0.20.0 (also as a YAML/CLI key)",
        "https://github.com/huggingface/trl/releases/tag/v0.16.0",
        "the minimum supported trl is >= 0.20",
    ),
    Gate(
        "trl_formatting_func_per_example",
        (("trl", "0.17.0"),),
        "SFTTrainer(formatting_func=f): a list returned for the first row makes f a batched function",
        "f is called per example and must return one string (a batched function's list is a TypeError/wrong text)",
        "https://github.com/huggingface/trl/releases/tag/v0.17.0",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_sft_packing_knobs_removed",
        (("trl", "0.18.0"),),
        "SFTConfig(num_of_sequences=, chars_per_token=, dataset_batch_size=) (ConstantLengthDataset packing)",
        "those fields are gone (TypeError); packing=True packs to max_length",
        "https://github.com/huggingface/trl/releases/tag/v0.18.0",
        "the minimum supported trl is >= 0.18",
    ),
    Gate(
        "trl_sft_data_helpers_removed",
        (("trl", "0.20.0"),),
        "trl.DataCollatorForCompletionOnlyLM(response_template, tokenizer=), trl.trainer.ConstantLengthDataset "
        "(deprecated in 0.17)",
        "gone (ImportError): SFTConfig(completion_only_loss=True) (prompt/completion data) or assistant_only_loss=True "
        "(conversational), SFTConfig(packing=True)",
        "https://github.com/huggingface/trl/pull/3704",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_dpo_max_target_length_removed",
        (("trl", "0.14.0"),),
        "DPOConfig(max_target_length=) (encoder-decoder targets)",
        "no such field (TypeError); max_length bounds prompt and completion",
        "https://github.com/huggingface/trl/releases/tag/v0.14.0",
        "the minimum supported trl is >= 0.14",
    ),
    Gate(
        "trl_dpo_is_encoder_decoder_removed",
        (("trl", "0.15.0"),),
        "DPOConfig(is_encoder_decoder=)",
        "no such field (TypeError); the trainer reads it from the model's config",
        "https://github.com/huggingface/trl/releases/tag/v0.15.0",
        "the minimum supported trl is >= 0.15",
    ),
    Gate(
        "trl_dpo_padding_value_removed",
        (("trl", "0.26.0"),),
        "DPOConfig(padding_value=)",
        "no such field (TypeError); the collator pads with the tokenizer's pad token",
        "https://github.com/huggingface/trl/releases/tag/v0.26.0",
        "the minimum supported trl is >= 0.26",
    ),
    Gate(
        "trl_dpo_fields_removed",
        (("trl", "0.29.0"),),
        "DPOConfig(max_prompt_length=, max_completion_length=, rpo_alpha=, reference_free=, generate_during_eval=, "
        "label_pad_token_id=, model_adapter_name=, ref_adapter_name=, ref_model_init_kwargs=, force_use_ref_model=, "
        "use_logits_to_keep=, tools=, base_model_attribute_name=) (deprecated in 0.28)",
        "those fields raise TypeError; rpo_alpha == loss_type + ['sft'] with loss_weights [1.0, rpo_alpha]",
        "https://github.com/huggingface/trl/pull/3906",
        "the minimum supported trl is >= 0.29",
    ),
    Gate(
        "trl_kto_prompt_length_removed",
        (("trl", "0.27.0"),),
        "KTOConfig(max_prompt_length=, max_completion_length=)",
        "gone (TypeError); label_pad_token_id/padding_value follow in 0.28",
        "https://github.com/huggingface/trl/releases/tag/v0.27.0",
        "the minimum supported trl is >= 0.27",
    ),
    Gate(
        "trl_prompt_length_removed",
        (("trl", "0.28.0"),),
        "GRPOConfig/ORPOConfig/CPOConfig(max_prompt_length=), ORPO/CPO/KTO label_pad_token_id, CPO/KTO padding_value, "
        "GRPOConfig(vllm_guided_decoding_regex=, use_liger_loss=)",
        "those raise TypeError; GRPO: vllm_structured_outputs_regex (from 0.27), use_liger_kernel",
        "https://github.com/huggingface/trl/pull/4847",
        "the minimum supported trl is >= 0.28",
    ),
    Gate(
        "trl_grpo_log_unique_prompts",
        (("trl", "0.27.0"),),
        "GRPOConfig(wandb_log_unique_prompts=)",
        "GRPOConfig(log_unique_prompts=) (from 0.26); the old field is gone (TypeError)",
        "https://github.com/huggingface/trl/releases/tag/v0.27.0",
        "the minimum supported trl is >= 0.27",
    ),
    Gate(
        "trl_grpo_vllm_device_removed",
        (("trl", "0.18.0"),),
        "GRPOConfig(vllm_device=, vllm_dtype=, vllm_max_model_len=) (vLLM on a GPU of the training process)",
        "gone (TypeError): vLLM runs as a server (trl vllm-serve) or colocated (vllm_mode='colocate')",
        "https://github.com/huggingface/trl/releases/tag/v0.18.0",
        "the minimum supported trl is >= 0.18",
    ),
    Gate(
        "trl_experimental_trainers",
        (("trl", "0.26.0"),),
        "from trl import ORPOTrainer/ORPOConfig, CPO*, OnlineDPO*, GKD*",
        "they live in trl.experimental.{orpo,cpo,online_dpo,gkd} (the top-level names are shims until 0.29.0, then "
        "ImportError)",
        "https://github.com/huggingface/trl/releases/tag/v0.26.0",
        "the minimum supported trl is >= 0.29",
    ),
    Gate(
        "trl_trainer_utils_moved",
        (("trl", "0.27.0"),),
        "trl.trainer.utils.DPODataCollatorWithPadding",
        "trl.experimental.utils.DPODataCollatorWithPadding (ImportError from trl.trainer.utils)",
        "https://github.com/huggingface/trl/releases/tag/v0.27.0",
        "the minimum supported trl is >= 0.27",
    ),
    Gate(
        "trl_pad_to_length_moved",
        (("trl", "0.29.0"),),
        "trl.trainer.utils.pad_to_length (RunningMoments there too)",
        "trl.experimental.utils.pad_to_length; RunningMoments moved into trl.experimental.bco.bco_trainer",
        "https://github.com/huggingface/trl/releases/tag/v0.29.0",
        "the minimum supported trl is >= 0.29",
    ),
    Gate(
        "trl_cli_utils_removed",
        (("trl", "0.12.0"),),
        "trl.commands.cli_utils.{SFT,DPO,Reward}ScriptArguments (0.8: SftScriptArguments/DpoScriptArguments)",
        "trl.ScriptArguments (0.12.0); trl.commands is gone in 0.13.0 (ModuleNotFoundError); TrlParser and "
        "init_zero_verbose are top-level trl names on every version >= 0.8",
        "https://github.com/huggingface/trl/releases/tag/v0.13.0",
        "the minimum supported trl is >= 0.13",
    ),
    Gate(
        "trl_top_level_utils_removed",
        (("trl", "0.14.0"),),
        "from trl import set_seed (is_peft_available until 0.10)",
        "gone: transformers.set_seed, transformers.utils.is_peft_available (equivalent on every version)",
        "https://github.com/huggingface/trl/releases/tag/v0.14.0",
        "never for the codemod (the rewrite is valid everywhere)",
    ),
    Gate(
        "trl_setup_chat_format_removed",
        (("trl", "0.26.0"),),
        "trl.setup_chat_format(model, tokenizer) -> (model, tokenizer)",
        "gone (ImportError); compat.setup_chat_format keeps it; trl.clone_chat_template returns 3 values",
        "https://github.com/huggingface/trl/pull/4607",
        "never for the codemod (old scripts keep existing); compat.setup_chat_format can go with the compat helpers",
    ),
    Gate(
        "trl_dataset_formatting_removed",
        (("trl", "0.27.0"),),
        "trl.extras.dataset_formatting.conversations_formatting_function",
        "gone (ModuleNotFoundError); compat.conversations_formatting_function keeps it",
        "https://github.com/huggingface/trl/releases/tag/v0.27.0",
        "never for the codemod (old scripts keep existing)",
    ),
    Gate(
        "trl_simple_chat_template_removed",
        (("trl", "0.27.0"),),
        "trl.trainer.utils.SIMPLE_CHAT_TEMPLATE (0.11-0.26)",
        "trl.experimental.utils.SIMPLE_CHAT_TEMPLATE (0.27-1.0), gone in 1.1.0; compat.SIMPLE_CHAT_TEMPLATE keeps it",
        "https://github.com/huggingface/trl/releases/tag/v0.27.0",
        "never for the codemod (old scripts keep existing)",
    ),
    Gate(
        "trl_kbit_device_map_removed",
        (("trl", "1.8.0"),),
        "trl.get_kbit_device_map()",
        "gone without deprecation (ImportError); compat.get_kbit_device_map keeps it",
        "https://github.com/huggingface/trl/pull/6158",
        "never for the codemod (old scripts keep existing)",
    ),
    Gate(
        "trl_old_ppo_api_removed",
        (("trl", "0.12.0"),),
        "PPOConfig(model_name=...), PPOTrainer(config, model, ref_model, tokenizer), ppo_trainer.step(...)",
        "PPOTrainer(args, processing_class, model, ref_model, reward_model, train_dataset) (the former PPOv2)",
        "https://github.com/huggingface/trl/releases/tag/v0.12.0",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_ddpo_alignprop_removed",
        (("trl", "0.24.0"),),
        "trl.DDPOTrainer/DDPOConfig, trl.AlignPropTrainer/AlignPropConfig",
        "gone (ImportError), no successor in TRL",
        "https://github.com/huggingface/trl/releases/tag/v0.24.0",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_core_removed",
        (("trl", "0.26.0"),),
        "trl.core (LengthSampler, respond_to_batch, ...)",
        "gone (ModuleNotFoundError)",
        "https://github.com/huggingface/trl/releases/tag/v0.26.0",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_ppo_removed",
        (("trl", "1.13.0"),),
        "PPOTrainer/PPOConfig, AutoModelForCausalLMWithValueHead (trl.experimental.ppo from 0.29)",
        "gone (ImportError), no successor in TRL",
        "https://github.com/huggingface/trl/releases/tag/v1.13.0",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_trainers_removed",
        (("trl", "1.14.0"),),
        "BCOTrainer/BCOConfig, XPOTrainer, NashMDTrainer, PRMTrainer (trl.experimental from 0.26), RunningMoments",
        "gone (ImportError), no successor in TRL",
        "https://github.com/huggingface/trl/releases/tag/v1.14.0",
        "never for the codemod (diagnostic only)",
    ),
    Gate(
        "trl_model_config_dtype",
        (("trl", "0.23.0"),),
        "ModelConfig(torch_dtype=), model_args.torch_dtype, YAML torch_dtype:",
        "dtype (torch_dtype warns; TypeError/AttributeError/TrlParser ValueError from 0.27.0)",
        "https://github.com/huggingface/trl/releases/tag/v0.23.0",
        "the minimum supported trl is >= 0.27",
    ),
    Gate(
        "trl_trust_remote_code_on_configs",
        (("trl", "1.7.0"),),
        "ModelConfig.trust_remote_code",
        "SFTConfig/DPOConfig/RewardConfig/KTOConfig/... .trust_remote_code; ModelConfig has none (no version has both)",
        "https://github.com/huggingface/trl/pull/5802",
        "the minimum supported trl is >= 1.7",
    ),
)

GATES_BY_NAME: dict[str, Gate] = {gate.name: gate for gate in GATES}


@functools.cache
def installed(package: str) -> Version | None:
    """The installed version of `package` (from its metadata, never by importing it), or None."""
    if package == "python":
        return Version(".".join(map(str, sys.version_info[:3])))
    try:
        return Version(metadata.version(package))
    except metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, Version | None]:
    packages = {pkg for gate in GATES for pkg, _ in gate.since} | set(STACK)
    return {pkg: installed(pkg) for pkg in sorted(packages)}


def is_new(name: str) -> bool:
    """True when the installed stack is on the new side of gate `name` (False when a package is missing)."""
    return GATES_BY_NAME[name].side() == "new"


def at_least(package: str, version: str) -> bool:
    have = installed(package)
    return have is not None and Version(have.base_version) >= Version(version)


def render(versions: dict[str, Version | None] | None = None) -> str:
    versions = versions if versions is not None else installed_versions()
    lines = ["Installed stack:"]
    for pkg in STACK:
        lines.append(f"  {pkg:<13} {versions.get(pkg) or 'not installed'}")
    lines.append("")
    lines.append(f"  {'gate':<31} {'new behaviour since':<46} side")
    for gate in GATES:
        side = gate.side(versions) or "n/a (not installed)"
        lines.append(f"  {gate.name:<31} {gate.requirement:<46} {side}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
