"""The unified model preparation that TRL's trainers do since TRL PR #4577, version-gated.

`plan()` reads the model, the settings (TrainingArguments or keywords) and the installed versions and returns the
ordered steps, each with its reason and the gate of `compat.versions` it depends on. `prepare_model()` applies them;
`explain()` returns them without touching the model. The deprecated helpers of `compat.legacy` use the same steps.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from compat import versions

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class Step:
    name: str
    reason: str
    gate: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        gate = ""
        if self.gate:
            gate = f"  [gate {self.gate}: {versions.GATES_BY_NAME[self.gate].side() or 'n/a'} side]"
        return f"{self.name}({params}): {self.reason}{gate}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    @property
    def names(self) -> list[str]:
        return [step.name for step in self.steps]

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def __str__(self) -> str:
        return "\n".join(f"{i}. {step}" for i, step in enumerate(self.steps, 1))


@dataclass(frozen=True)
class Settings:
    """What the preparation reads from `args` (never written back) or from the keywords."""

    checkpointing: bool = False
    checkpointing_kwargs: Mapping[str, Any] | None = None
    zero3: bool = False
    fsdp: bool = False
    from_args: bool = False  # checkpointing asked by a TrainingArguments, which the Trainer re-applies in train()

    @classmethod
    def resolve(cls, args: Any = None, gradient_checkpointing: bool | None = None,
                gradient_checkpointing_kwargs: Mapping[str, Any] | None = None) -> "Settings":
        # transformers >= 5.23 names them activation_checkpointing*, with the old names mirrored: read the new first.
        from_args = gradient_checkpointing is None and gradient_checkpointing_kwargs is None
        if gradient_checkpointing is None:
            gradient_checkpointing = _first_set(args, "activation_checkpointing", "gradient_checkpointing")
        if gradient_checkpointing_kwargs is None:
            gradient_checkpointing_kwargs = _first_set(
                args, "activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"
            )
        if isinstance(gradient_checkpointing_kwargs, str):  # TrainingArguments accepts a JSON string
            gradient_checkpointing_kwargs = json.loads(gradient_checkpointing_kwargs)
        if gradient_checkpointing_kwargs is not None and not isinstance(gradient_checkpointing_kwargs, Mapping):
            raise TypeError(
                "gradient_checkpointing_kwargs must be a dict such as {'use_reentrant': False}, "
                f"got {type(gradient_checkpointing_kwargs).__name__}"
            )
        return cls(
            checkpointing=bool(gradient_checkpointing),
            checkpointing_kwargs=dict(gradient_checkpointing_kwargs) if gradient_checkpointing_kwargs else None,
            zero3=_is_zero3(args),
            fsdp=bool(getattr(args, "fsdp", None)),
            from_args=from_args and args is not None,
        )


def _first_set(args: Any, *names: str) -> Any:
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            return value
    return None


def _is_zero3(args: Any) -> bool:
    plugin = getattr(args, "deepspeed_plugin", None)
    if plugin is not None and getattr(plugin, "zero_stage", None) == 3:
        return True
    config = getattr(args, "deepspeed", None)
    if isinstance(config, str) and config.endswith(".json"):
        with open(config, encoding="utf-8") as f:
            config = json.load(f)
    if isinstance(config, Mapping):
        return (config.get("zero_optimization") or {}).get("stage") == 3
    return False


# --- what the model is --------------------------------------------------------------------------------------------


def is_quantized(model: Any) -> bool:
    # A 4-bit model has no is_loaded_in_8bit attribute at all, and a PeftModel forwards both to its base model.
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def _is_peft_model(model: Any) -> bool:
    if "peft" not in sys.modules:
        return False  # nothing can be a PeftModel if peft was never imported
    return isinstance(model, sys.modules["peft"].PeftModel)


def _frozen_float_dtype(model: Any, wrapping: bool) -> "torch.dtype | None":
    """The dtype most frozen floating-point parameters will have (what FSDP flattens trainable ones together with).
    `wrapping`: get_peft_model is still to come and will freeze the whole base model."""
    counts: dict[Any, int] = {}
    for param in model.parameters():
        if (wrapping or not param.requires_grad) and param.is_floating_point():
            counts[param.dtype] = counts.get(param.dtype, 0) + param.numel()
    return max(counts, key=counts.get) if counts else None


# --- step 1: validation -------------------------------------------------------------------------------------------


def _import_peft():
    from compat import hybrid_cache

    hybrid_cache.patch()
    try:
        import peft
    except ModuleNotFoundError as exc:
        if exc.name != "peft":
            raise
        raise ImportError(
            "A peft_config was given but peft is not installed. Install it with: pip install peft"
        ) from None
    return peft


def validate(model: Any, peft_config: Any) -> None:
    """Raise a clear error for bad input, before the model is touched."""
    if isinstance(model, (str, bytes)) or not hasattr(model, "named_parameters"):
        raise TypeError(
            f"prepare_model takes a loaded model (a torch.nn.Module), got {type(model).__name__}. Load it first, e.g. "
            "AutoModelForCausalLM.from_pretrained(path, **compat.pretrained_kwargs(dtype='bfloat16'))."
        )
    if peft_config is None:
        return
    peft = _import_peft()
    if not isinstance(peft_config, peft.PeftConfig):
        hint = " Build one with peft.LoraConfig(**your_dict)." if isinstance(peft_config, Mapping) else ""
        raise TypeError(
            f"peft_config must be a peft.PeftConfig instance (e.g. peft.LoraConfig), got "
            f"{type(peft_config).__name__}.{hint}"
        )
    if isinstance(model, peft.PeftModel):
        raise ValueError(
            "A PeftModel was passed together with a new peft_config. Merge the existing adapter first and save the "
            "merged base model, so that the new adapter can be reloaded on top of it later: "
            "base = model.merge_and_unload(); base.save_pretrained(path); then reload it with from_pretrained(path) "
            "and pass it with the new peft_config. (Or pass the PeftModel without a peft_config to keep training it.)"
        )


# --- steps 2-7: the plan ------------------------------------------------------------------------------------------


def checkpointing_steps(model: Any, settings: Settings, *, peft: bool, quantized: bool) -> list[Step]:
    """Steps 4 and 5: gradient (activation) checkpointing the version-correct way, and the input-grad hook."""
    if not settings.checkpointing:
        return []
    kwargs = dict(settings.checkpointing_kwargs or {})
    why = []
    gate = "activation_checkpointing_names"  # decides the method name
    if peft and settings.zero3:
        if kwargs.get("use_reentrant") is False:
            warnings.warn(
                "PEFT with DeepSpeed ZeRO-3 needs reentrant checkpointing: use_reentrant=False is overridden to True.",
                UserWarning,
                stacklevel=4,
            )
        kwargs["use_reentrant"] = True
        why.append("PEFT under ZeRO-3 needs use_reentrant=True (TRL issue #2514)")
    elif "use_reentrant" not in kwargs:
        # Always explicit: transformers passes our dict as is, and torch warns (or raises) without the keyword.
        kwargs["use_reentrant"] = False
        gate = "non_reentrant_default"
        why.append("use_reentrant=False, the transformers 5.x default (4.x defaults to reentrant)")
        if settings.from_args and not versions.is_new("non_reentrant_default"):
            # We never write to args, and transformers 4.x's Trainer.train() re-enables checkpointing from them.
            why.append("note: Trainer.train() re-applies args' checkpointing with use_reentrant=True on transformers "
                       "4.x; put gradient_checkpointing_kwargs={'use_reentrant': False} in args to keep this")
    if versions.is_new("activation_checkpointing_names"):
        method, kw = "activation_checkpointing_enable", "activation_checkpointing_kwargs"
        why.append("the name transformers >= 5.23 prefers (the old one warns)")
    else:
        method, kw = "gradient_checkpointing_enable", "gradient_checkpointing_kwargs"
    steps = [
        Step(
            "checkpointing",
            "; ".join(why) or "enable checkpointing as asked",
            gate,
            {"method": method, kw: kwargs},
        )
    ]
    if peft or quantized:
        reason = (
            "frozen embeddings: without input grads the checkpointed blocks get no gradient (transformers #42489)"
            if not versions.is_new("input_grads_builtin")
            else "transformers >= 5 registers this hook itself for text models; done anyway for other models"
        )
        steps.append(Step("input_require_grads", reason, "input_grads_builtin"))
    return steps


def plan(model: Any, peft_config: Any = None, args: Any = None, *, gradient_checkpointing: bool | None = None,
         gradient_checkpointing_kwargs: Mapping[str, Any] | None = None) -> Plan:
    """The ordered steps of the unified preparation for this model, settings and installed versions."""
    validate(model, peft_config)
    settings = Settings.resolve(args, gradient_checkpointing, gradient_checkpointing_kwargs)
    quantized = is_quantized(model)  # step 2: read before wrapping
    has_adapter = peft_config is not None or _is_peft_model(model)
    steps = [Step("validate", "inputs checked before the model is touched", params={"quantized": quantized})]

    if peft_config is not None:
        kwargs: dict[str, Any] = {}
        reason = "wrap with the adapter; this freezes the base model"
        # ZeRO-3 and FSDP flatten adapter and base parameters together: an fp32 adapter on a bf16 base breaks them.
        if (settings.zero3 or settings.fsdp) and not quantized:
            if versions.is_new("autocast_adapter_dtype_kwarg"):
                kwargs["autocast_adapter_dtype"] = False
                reason += "; adapter keeps the base dtype (ZeRO-3/FSDP need one dtype)"
        steps.append(Step("get_peft_model", reason, "autocast_adapter_dtype_kwarg" if kwargs else None, kwargs))

    steps += checkpointing_steps(model, settings, peft=has_adapter, quantized=quantized)

    if quantized and has_adapter:
        steps.append(
            Step(
                "cast_trainable",
                "QLoRA trains adapters in bf16 (QLoRA paper, sec. 3); peft < 0.19 ignores autocast_adapter_dtype=False "
                "on 4-bit bases; DoRA magnitude vectors stay as they are",
                "autocast_adapter_dtype_4bit",
                {"dtype": "bfloat16"},
            )
        )
    if settings.fsdp and has_adapter:
        dtype = _frozen_float_dtype(model, wrapping=peft_config is not None)
        if dtype is not None:
            steps.append(
                Step(
                    "uniform_dtype",
                    "FSDP flattens trainable and frozen parameters together: they must share one dtype",
                    None,
                    {"dtype": str(dtype).removeprefix("torch.")},
                )
            )
    return Plan(tuple(steps))


def explain(model: Any, peft_config: Any = None, args: Any = None, **keywords: Any) -> Plan:
    """The steps `prepare_model` would apply, without applying them."""
    return plan(model, peft_config, args, **keywords)


# --- applying -----------------------------------------------------------------------------------------------------


def _get_peft_model(model, peft_config, **kwargs):
    peft = _import_peft()
    with warnings.catch_warnings():
        # peft (up to 0.21 at least) reads model.is_gradient_checkpointing, which warns on transformers >= 5.23:
        # not the user's call to fix, so it must not reach them from ours.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return peft.get_peft_model(model, peft_config, **kwargs)


def _checkpointing(model, method: str, **kwargs):
    getattr(model, method)(**kwargs)
    return model


def _input_require_grads(model):
    model.enable_input_require_grads()
    return model


def cast_trainable_params(model, dtype: "torch.dtype | str" = "bfloat16"):
    """Cast every trainable floating-point parameter to `dtype` (default bf16), in place; returns the model.

    DoRA's `lora_magnitude_vector` is left alone: its updates can be smaller than bf16 can represent.
    This is what replaces TRL's `peft_module_casting_to_bf16`, which instead upcast norms to fp32.
    """
    import torch

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    for name, param in model.named_parameters():
        if param.requires_grad and param.is_floating_point() and "lora_magnitude_vector" not in name:
            param.data = param.data.to(dtype)
    return model


def _uniform_dtype(model, dtype: str):
    import torch

    for param in model.parameters():
        if param.requires_grad and param.is_floating_point():
            param.data = param.data.to(getattr(torch, dtype))
    return model


_APPLY: dict[str, Callable[..., Any]] = {
    "validate": lambda model, quantized: model,
    "checkpointing": _checkpointing,
    "input_require_grads": _input_require_grads,
    "cast_trainable": cast_trainable_params,
    "uniform_dtype": _uniform_dtype,
}


def apply(model, the_plan: Plan, peft_config=None):
    for step in the_plan:
        if step.name == "get_peft_model":
            model = _get_peft_model(model, peft_config, **step.params)
        else:
            model = _APPLY[step.name](model, **step.params)
    return model


def prepare_model(model, peft_config=None, args=None, *, gradient_checkpointing: bool | None = None,
                  gradient_checkpointing_kwargs: Mapping[str, Any] | None = None):
    """Prepare `model` for training the way TRL's trainers do (see `explain` for the steps and why).

    `args` is any TrainingArguments (TRL configs included); it is read, never modified. Without a Trainer, pass
    `gradient_checkpointing=` / `gradient_checkpointing_kwargs=` instead. Returns the model to train: a PeftModel
    when `peft_config` is given.
    """
    the_plan = plan(model, peft_config, args, gradient_checkpointing=gradient_checkpointing,
                    gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
    return apply(model, the_plan, peft_config)


def enable_checkpointing(model, checkpointing_kwargs: Mapping[str, Any] | None = None):
    """Turn on gradient (activation) checkpointing with the method the installed transformers prefers, the
    non-reentrant default everywhere, and the input-grad hook that PEFT and quantized models need."""
    validate(model, None)
    settings = Settings(checkpointing=True, checkpointing_kwargs=checkpointing_kwargs)
    steps = checkpointing_steps(model, settings, peft=_is_peft_model(model), quantized=is_quantized(model))
    return apply(model, Plan(tuple(steps)))
