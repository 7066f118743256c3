"""Names of the Hugging Face libraries: which qualified names are model classes, trainers, argument classes...

Pure string predicates over qualified names (`transformers.AutoModelForCausalLM`); no import of those libraries.
"""

from __future__ import annotations

import re

HF_ROOTS = frozenset({"transformers", "trl", "peft"})
UNKNOWN_MEMBER = "*"  # `getattr(transformers, name)`: some member of the module, name unknown

TRL_TRAINING_CONFIGS = frozenset(
    {
        "SFTConfig", "DPOConfig", "GRPOConfig", "KTOConfig", "ORPOConfig", "CPOConfig", "RewardConfig", "PPOConfig",
        "RLOOConfig", "OnlineDPOConfig", "BCOConfig", "PRMConfig", "GKDConfig", "NashMDConfig", "XPOConfig",
        "IterativeSFTConfig", "GOLDConfig", "MiniLLMConfig", "AlignPropConfig", "DDPOConfig", "PPOv2Config",
    }
)  # fmt: skip
_NOT_MODEL_SUFFIXES = (
    "Tokenizer", "TokenizerFast", "Processor", "ProcessorFast", "FeatureExtractor", "Config", "Arguments", "Trainer",
    "Parser", "Pipeline", "Callback", "Collator", "Mixin", "Output", "Cache", "Streamer", "ImageProcessor",
)  # fmt: skip
# Methods whose result is the same model (or forwards its methods to it).
MODEL_PRESERVING_METHODS = frozenset(
    {"to", "cuda", "cpu", "half", "float", "bfloat16", "eval", "train", "requires_grad_", "merge_and_unload",
     "get_base_model", "to_empty"}
)  # fmt: skip
# peft functions whose result wraps their first argument (and forwards the checkpointing methods to it).
PEFT_MODEL_FUNCTIONS = frozenset(
    {
        "get_peft_model",
        "prepare_model_for_kbit_training",
        "prepare_model_for_int8_training",
    }
)
LOAD_METHODS = frozenset({"from_pretrained", "from_config", "_from_config"})


def root(qname: str) -> str:
    return qname.split(".", 1)[0]


def last(qname: str) -> str:
    return qname.rsplit(".", 1)[-1]


def is_hf(qname: str) -> bool:
    return root(qname) in HF_ROOTS


def is_model_class(qname: str) -> bool:
    """A transformers model class (Auto* or concrete), TRL's value-head wrappers, peft's model classes."""
    if not is_hf(qname):
        return False
    name = last(qname)
    if name == UNKNOWN_MEMBER:
        return root(qname) == "transformers"
    if not name[:1].isupper() or name.endswith(_NOT_MODEL_SUFFIXES):
        return False
    if root(qname) == "peft":
        return name.startswith(("PeftModel", "AutoPeftModel"))
    return True


def is_loading_model_class(qname: str) -> bool:
    """A class whose from_pretrained/from_config hands its keywords to transformers' from_pretrained."""
    if not is_model_class(qname):
        return False
    return not (root(qname) == "peft" and last(qname).startswith("PeftModel"))


def is_peft_model_class(qname: str) -> bool:
    """peft's PeftModel*: `PeftModel.from_pretrained(base, path)` wraps `base`."""
    return root(qname) == "peft" and last(qname).startswith("PeftModel")


def is_training_args_class(qname: str) -> bool:
    """TrainingArguments, Seq2SeqTrainingArguments, and TRL's training configs (all subclass TrainingArguments)."""
    if root(qname) == "transformers":
        return last(qname).endswith("TrainingArguments")
    return root(qname) == "trl" and last(qname) in TRL_TRAINING_CONFIGS


def is_trainer_class(qname: str) -> bool:
    return is_hf(qname) and last(qname).endswith("Trainer")


def is_transformers_trainer(qname: str) -> bool:
    return root(qname) == "transformers" and last(qname) in (
        "Trainer",
        "Seq2SeqTrainer",
    )


def is_trl_trainer(qname: str) -> bool:
    return root(qname) == "trl" and last(qname).endswith("Trainer")


_MODEL_NAME = re.compile(
    r"^(?:AutoModel\w*|\w+For(?:CausalLM|Seq2SeqLM|MaskedLM|SequenceClassification|TokenClassification"
    r"|QuestionAnswering|ConditionalGeneration|ImageTextToText|Vision2Seq)|\w*PreTrainedModel)$"
)


def looks_like_model_class(qname: str) -> bool:
    """A name shaped like a transformers model class (`BloomForCausalLM`, `AutoModelForCausalLM`): imported from a
    module we cannot see, it may well be one (a re-export or a subclass)."""
    return _MODEL_NAME.match(last(qname)) is not None


def is_tokenizer_class(qname: str) -> bool:
    name = last(qname)
    return root(qname) == "transformers" and (name.endswith(("Tokenizer", "TokenizerFast")) or name == "AutoTokenizer")


def is_processor_class(qname: str) -> bool:
    name = last(qname)
    return root(qname) == "transformers" and (name.endswith(("Processor", "ProcessorFast")) or name == "AutoProcessor")


def is_arg_parser_class(qname: str) -> bool:
    return (root(qname) == "transformers" and last(qname) == "HfArgumentParser") or (
        root(qname) == "trl" and last(qname) == "TrlParser"
    )
