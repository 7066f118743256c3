"""The codemod rules, one module per rule. The order of RULES is the order the rules plan in on a file (and the
order of `--list-rules`): edits on one node compose in that order."""

from __future__ import annotations

from codemods.rule import Rule
from codemods.rules.peft_int8_training import PeftInt8Training
from codemods.rules.transformers_activation_checkpointing import (
    TransformersActivationCheckpointing,
)
from codemods.rules.transformers_apply_chat_template import TransformersApplyChatTemplate
from codemods.rules.transformers_flash_attention_2 import TransformersFlashAttention2
from codemods.rules.transformers_hf_argparser_collision import TransformersHfArgparserCollision
from codemods.rules.transformers_load_in_kbit import TransformersLoadInKbit
from codemods.rules.transformers_private_attributes import TransformersPrivateAttributes
from codemods.rules.transformers_processing_class import TransformersProcessingClass
from codemods.rules.transformers_removed_imports import TransformersRemovedImports
from codemods.rules.transformers_report_to import TransformersReportTo
from codemods.rules.transformers_tokenizer_methods import TransformersTokenizerMethods
from codemods.rules.transformers_tokenizer_type import TransformersTokenizerType
from codemods.rules.transformers_torch_dtype import TransformersTorchDtype
from codemods.rules.transformers_trainer_subclass_signatures import TransformersTrainerSubclassSignatures
from codemods.rules.transformers_training_args import TransformersTrainingArgs
from codemods.rules.transformers_use_auth_token import TransformersUseAuthToken
from codemods.rules.trl_dpo_config import TrlDpoConfig
from codemods.rules.trl_enable_gradient_checkpointing import (
    TrlEnableGradientCheckpointing,
)
from codemods.rules.trl_imports import TrlImports
from codemods.rules.trl_model_config import TrlModelConfig
from codemods.rules.trl_peft_module_casting_to_bf16 import TrlPeftModuleCastingToBf16
from codemods.rules.trl_prepare_model_for_kbit_training import (
    TrlPrepareModelForKbitTraining,
)
from codemods.rules.trl_prepare_peft_model import TrlPreparePeftModel
from codemods.rules.trl_sft_config import TrlSftConfig
from codemods.rules.trl_trainer_processing_class import TrlTrainerProcessingClass

RULES: list[type[Rule]] = [
    TrlPreparePeftModel,
    TrlEnableGradientCheckpointing,
    TrlPrepareModelForKbitTraining,
    TrlPeftModuleCastingToBf16,
    PeftInt8Training,
    TransformersTorchDtype,
    TransformersLoadInKbit,
    TransformersActivationCheckpointing,
    TransformersProcessingClass,
    TransformersTrainingArgs,
    TransformersTrainerSubclassSignatures,
    TransformersUseAuthToken,
    TransformersApplyChatTemplate,
    TransformersReportTo,
    TransformersTokenizerType,
    TransformersFlashAttention2,
    TransformersRemovedImports,
    TransformersTokenizerMethods,
    TransformersPrivateAttributes,
    TransformersHfArgparserCollision,
    TrlTrainerProcessingClass,
    TrlSftConfig,
    TrlDpoConfig,
    TrlModelConfig,
    TrlImports,
]
