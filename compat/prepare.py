"""The unified model preparation that TRL's trainers do since TRL PR #4577, version-gated.

`plan()` reads the model, the settings (TrainingArguments or keywords) and the installed versions and returns the
ordered steps, each with its reason, the gate of `compat.versions` it depends on, and its own `apply`.
`prepare_model()` applies them; `explain()` returns them without touching the model. The deprecated helpers of
`compat.legacy` use the same steps.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compat import versions

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from peft import PeftConfig

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn` attributed to the first frame outside compat: the user's call, whichever of our paths led here
    (so the default filters show it once per call site, and `-W error` / `pytest.warns` see every call)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@dataclass(frozen=True)
class Step:
    """One step of the preparation: what, why, the gate it depends on, and the function that applies it (a step
    without one records a check made while planning)."""

    name: str
    reason: str
    gate: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    apply: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)

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

    def __iter__(self) -> Iterator[Step]:
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

    def apply(self, model: Any) -> Any:
        for step in self.steps:
            if step.apply is not None:
                model = step.apply(model)
        return model


@dataclass(frozen=True)
class Settings:
    """What the preparation reads from `args` (never written back) or from the keywords."""

    checkpointing: bool = False
    checkpointing_kwargs: Mapping[str, Any] | None = None
    zero3: bool = False
    fsdp: bool = False
    seed: int | None = None  # args.seed: the adapter initialisation is seeded from it, as in TRL

    @classmethod
    def resolve(
        cls,
        args: Any = None,
        gradient_checkpointing: bool | None = None,
        gradient_checkpointing_kwargs: Mapping[str, Any] | None = None,
    ) -> Settings:
        # transformers >= 5.23 names them activation_checkpointing*, with the old names mirrored: read the new first.
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
        seed = getattr(args, "seed", None)
        return cls(
            checkpointing=bool(gradient_checkpointing),
            checkpointing_kwargs=dict(gradient_checkpointing_kwargs) if gradient_checkpointing_kwargs else None,
            zero3=_is_zero3(args),
            fsdp=bool(getattr(args, "fsdp", None)),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
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
    """True for a bitsandbytes 4-bit or 8-bit model (or a PeftModel over one)."""
    # A 4-bit model has no is_loaded_in_8bit attribute at all, and a PeftModel forwards both to its base model.
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def is_peft_model(model: Any) -> bool:
    """True for a peft.PeftModel (without importing peft: nothing can be one if peft was never imported)."""
    if "peft" not in sys.modules:
        return False
    return isinstance(model, sys.modules["peft"].PeftModel)


def _frozen_float_dtype(model: Any, wrapping: bool) -> torch.dtype | None:
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
        if is_peft_model(model):
            _check_prefix_tuning(model, model.peft_config.values())
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
    _check_prefix_tuning(model, [peft_config])


def _check_prefix_tuning(model: Any, configs: Any) -> None:
    # peft < 0.18 moves prefix tuning's virtual keys/values onto the device map through Cache.key_cache, which
    # transformers 4.56 removed: the first forward pass would fail with an AttributeError deep inside peft.
    if not hasattr(model, "hf_device_map") or versions.is_new("prefix_tuning_device_map"):
        return
    if not versions.is_new("cache_key_cache_removed"):
        return
    if any(getattr(config, "peft_type", None) == "PREFIX_TUNING" for config in configs):
        need = versions.GATES_BY_NAME["prefix_tuning_device_map"]
        raise ValueError(
            f"Prefix tuning on a model loaded with a device_map needs {need.requirement} with transformers "
            f"{versions.installed('transformers')} (peft {versions.installed('peft')} reads Cache.key_cache, which "
            f"transformers removed; {need.link}). Upgrade peft (pip install -U 'peft>=0.18'), or load the model "
            "without device_map."
        )


# --- steps 2-7: the plan ------------------------------------------------------------------------------------------

_KWARGS_NAME = {
    "gradient_checkpointing_enable": "gradient_checkpointing_kwargs",
    "activation_checkpointing_enable": "activation_checkpointing_kwargs",
}


def _validate_selective(settings: Settings, peft: bool) -> None:
    """`selective` is TRL's key for selective activation checkpointing; torch's checkpoint does not know it."""
    kwargs = settings.checkpointing_kwargs or {}
    if not kwargs.get("selective"):
        return
    if not settings.checkpointing:
        raise ValueError(
            "gradient_checkpointing_kwargs={'selective': True} needs gradient_checkpointing=True (it selects what "
            "checkpointing saves)."
        )
    if peft and settings.zero3:
        raise ValueError(
            "gradient_checkpointing_kwargs={'selective': True} does not work with PEFT under DeepSpeed ZeRO-3: that "
            "needs reentrant checkpointing, selective checkpointing needs non-reentrant. Drop 'selective'."
        )
    if kwargs.get("use_reentrant"):
        raise ValueError(
            "gradient_checkpointing_kwargs={'selective': True} needs non-reentrant checkpointing: set "
            "use_reentrant=False or leave it unset."
        )
    import torch.utils.checkpoint

    if not hasattr(torch.utils.checkpoint, "create_selective_checkpoint_contexts"):
        raise ImportError(
            f"Selective activation checkpointing needs torch.utils.checkpoint.create_selective_checkpoint_contexts, "
            f"which torch {versions.installed('torch')} does not have. Upgrade torch, or drop 'selective'."
        )


def checkpointing_steps(model: Any, settings: Settings, *, peft: bool, quantized: bool) -> list[Step]:
    """Steps 4 and 5: gradient (activation) checkpointing the version-correct way, and the input-grad hook."""
    _validate_selective(settings, peft)
    if not settings.checkpointing:
        return []
    kwargs = dict(settings.checkpointing_kwargs or {})
    forced: dict[str, Any] = {}
    why = []
    gate = "activation_checkpointing_names"  # decides the method name
    if peft and settings.zero3:
        if kwargs.get("use_reentrant") is False:
            warn("PEFT with DeepSpeed ZeRO-3 needs reentrant checkpointing: use_reentrant=False is overridden to True.")
        kwargs["use_reentrant"] = forced["use_reentrant"] = True
        why.append("PEFT under ZeRO-3 needs use_reentrant=True (TRL issue #2514)")
    elif "use_reentrant" not in kwargs:
        # Always explicit: transformers passes our dict as is, and torch warns (or raises) without the keyword.
        kwargs["use_reentrant"] = False
        gate = "non_reentrant_default"
        why.append("use_reentrant=False, the transformers 5.x default (4.x defaults to reentrant)")
    if kwargs.get("selective"):
        why.append(
            "selective: attention outputs are saved, the rest is recomputed (TRL's selective activation "
            "checkpointing, torch's create_selective_checkpoint_contexts)"
        )
    # transformers 4.x's Trainer.train() enables checkpointing again from args, with its reentrant default; args are
    # never written to, so the model's enable method keeps these kwargs for such later calls instead.
    why.append(
        "later enable calls (Trainer.train()'s) keep these unless they pass their own; "
        "compat.release_checkpointing_kwargs(model) undoes that"
    )
    if versions.is_new("activation_checkpointing_names"):
        method = "activation_checkpointing_enable"
        why.append("the name transformers >= 5.23 prefers (the old one warns)")
    else:
        method = "gradient_checkpointing_enable"
    steps = [
        Step(
            "checkpointing",
            "; ".join(why),
            gate,
            {"method": method, _KWARGS_NAME[method]: kwargs},
            functools.partial(_enable_checkpointing, method=method, kwargs=kwargs, forced=forced),
        )
    ]
    if peft or quantized:
        reason = (
            "frozen embeddings: without input grads the checkpointed blocks get no gradient (transformers #42489)"
            if not versions.is_new("input_grads_builtin")
            else "transformers >= 5 registers this hook itself for text models; done anyway for other models"
        )
        steps.append(Step("input_require_grads", reason, "input_grads_builtin", apply=_input_require_grads))
    return steps


def plan(
    model: Any,
    peft_config: PeftConfig | None = None,
    args: Any = None,
    *,
    gradient_checkpointing: bool | None = None,
    gradient_checkpointing_kwargs: Mapping[str, Any] | None = None,
) -> Plan:
    """The ordered steps of the unified preparation for this model, settings and installed versions."""
    validate(model, peft_config)
    settings = Settings.resolve(args, gradient_checkpointing, gradient_checkpointing_kwargs)
    quantized = is_quantized(model)  # step 2: read before wrapping
    has_adapter = peft_config is not None or is_peft_model(model)
    steps = [Step("validate", "inputs checked before the model is touched", params={"quantized": quantized})]

    if peft_config is not None:
        kwargs: dict[str, Any] = {}
        reason = "wrap with the adapter; this freezes the base model"
        # ZeRO-3 and FSDP flatten adapter and base parameters together: an fp32 adapter on a bf16 base breaks them.
        if (settings.zero3 or settings.fsdp) and not quantized:
            if versions.is_new("autocast_adapter_dtype_kwarg"):
                kwargs["autocast_adapter_dtype"] = False
                reason += "; adapter keeps the base dtype (ZeRO-3/FSDP need one dtype)"
        params: dict[str, Any] = dict(kwargs)
        if settings.seed is not None:
            params["seed"] = settings.seed
            reason += "; adapter initialised from args.seed as TRL does, the caller's RNG state left as it was"
        steps.append(
            Step(
                "get_peft_model",
                reason,
                "autocast_adapter_dtype_kwarg" if kwargs else None,
                params,
                functools.partial(_get_peft_model, peft_config=peft_config, seed=settings.seed, **kwargs),
            )
        )

    steps += checkpointing_steps(model, settings, peft=has_adapter, quantized=quantized)

    if quantized and has_adapter:
        steps.append(
            Step(
                "cast_trainable",
                "QLoRA trains adapters in bf16 (QLoRA paper, sec. 3); peft < 0.19 ignores autocast_adapter_dtype=False "
                "on 4-bit bases; DoRA magnitude vectors stay as they are",
                "autocast_adapter_dtype_4bit",
                {"dtype": "bfloat16"},
                functools.partial(cast_trainable_params, dtype="bfloat16"),
            )
        )
    if settings.fsdp and has_adapter:
        dtype = _frozen_float_dtype(model, wrapping=peft_config is not None)
        if dtype is not None:
            name = str(dtype).removeprefix("torch.")
            steps.append(
                Step(
                    "uniform_dtype",
                    "FSDP flattens trainable and frozen parameters together: they must share one dtype",
                    None,
                    {"dtype": name},
                    functools.partial(cast_trainable_params, dtype=name, skip=()),
                )
            )
    return Plan(tuple(steps))


def explain(
    model: Any,
    peft_config: PeftConfig | None = None,
    args: Any = None,
    *,
    gradient_checkpointing: bool | None = None,
    gradient_checkpointing_kwargs: Mapping[str, Any] | None = None,
) -> Plan:
    """The steps `prepare_model` would apply, without applying them (`print()` it for the reasons and gates)."""
    return plan(
        model,
        peft_config,
        args,
        gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs=gradient_checkpointing_kwargs,
    )


# --- applying -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's RNG seeded, then put the caller's RNG state back (TRL calls set_seed instead)."""
    if seed is None:
        yield
        return
    import torch

    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:  # only when initialized: an uninitialized CUDA would get the seed queued for later, unrestored
            torch.cuda.manual_seed_all(seed)
        yield


def _get_peft_model(model: Any, *, peft_config: Any, seed: int | None = None, **kwargs: Any) -> Any:
    peft = _import_peft()
    with warnings.catch_warnings(), _seeded(seed):
        # peft (up to 0.21 at least) reads model.is_gradient_checkpointing, which warns on transformers >= 5.23:
        # not the user's call to fix, so it must not reach them from ours.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return peft.get_peft_model(model, peft_config, **kwargs)


def _input_require_grads(model: Any) -> Any:
    model.enable_input_require_grads()
    return model


def cast_trainable_params(
    model: torch.nn.Module, dtype: torch.dtype | str = "bfloat16", *, skip: tuple[str, ...] = ("lora_magnitude_vector",)
) -> torch.nn.Module:
    """Cast every trainable floating-point parameter to `dtype` (default bf16), in place; returns the model.

    Parameters whose name contains one of `skip` are left alone: by default DoRA's `lora_magnitude_vector`, whose
    updates can be smaller than bf16 can represent. This replaces TRL's `peft_module_casting_to_bf16`, which instead
    upcast norms to fp32 and left the adapters as they were.
    """
    import torch

    dtype = getattr(torch, dtype.removeprefix("torch.")) if isinstance(dtype, str) else dtype
    for name, param in model.named_parameters():
        if param.requires_grad and param.is_floating_point() and not any(s in name for s in skip):
            param.data = param.data.to(dtype)
    return model


# --- checkpointing kwargs that survive later enable calls ---------------------------------------------------------

_ATTENTION_OPS = (  # the aten SDPA kernels (flash, memory-efficient, cuDNN, CPU), as TRL's selective checkpointing
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
)


@functools.cache
def _attention_ops() -> frozenset:
    import torch

    return frozenset(getattr(torch.ops.aten, name).default for name in _ATTENTION_OPS if hasattr(torch.ops.aten, name))


def _save_attention(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
    """Selective checkpointing policy: keep attention's outputs, recompute everything else (module level: picklable)."""
    from torch.utils.checkpoint import CheckpointPolicy

    if op in _attention_ops() or "flash_attn" in str(op):
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _for_torch(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The kwargs torch's checkpoint gets: TRL's `selective` key becomes a context_fn, never reaching torch."""
    kwargs = dict(kwargs)
    if kwargs.pop("selective", False):
        if kwargs.get("use_reentrant"):
            raise ValueError("selective activation checkpointing needs use_reentrant=False")
        from torch.utils.checkpoint import create_selective_checkpoint_contexts

        kwargs["use_reentrant"] = False
        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _save_attention)
    return kwargs


def _without_peft(model: Any) -> Any:
    return model.get_base_model() if is_peft_model(model) else model


class KeptCheckpointingKwargs:
    """Set as the model instance's checkpointing enable method by `prepare_model`: a later call (transformers 4.x's
    `Trainer.train()` enables checkpointing again from its args, reentrant by default) gets compat's kwargs, with the
    caller's own keys on top (ZeRO-3's forced `use_reentrant=True` excepted). Set on the transformers model itself, so
    a PeftModel forwards to it; a module-level class, so the model still pickles and deep-copies.
    `compat.release_checkpointing_kwargs(model)` puts the method back."""

    def __init__(
        self,
        model: Any,
        method: str,
        kwargs: Mapping[str, Any],
        forced: Mapping[str, Any],
        previous: Callable[..., Any] | None,
    ):
        self.model, self.method, self.previous = model, method, previous
        self.kwargs, self.forced = dict(kwargs), dict(forced)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = _KWARGS_NAME[self.method]
        caller = args[0] if args else kwargs.pop(name, None)
        merged = {**self.kwargs, **(caller or {}), **self.forced}
        method = self.previous or getattr(type(self.model), self.method).__get__(self.model)
        return method(*args[1:], **{name: _for_torch(merged)}, **kwargs)


def _enable_checkpointing(model: Any, *, method: str, kwargs: Mapping[str, Any], forced: Mapping[str, Any]) -> Any:
    target = _without_peft(model)
    current = target.__dict__.get(method)
    if isinstance(current, KeptCheckpointingKwargs):  # prepared again: one wrapper, the newest kwargs
        current.kwargs, current.forced = dict(kwargs), dict(forced)
    elif callable(getattr(target, method, None)):
        setattr(target, method, KeptCheckpointingKwargs(target, method, kwargs, forced, current))
    getattr(model, method)(**{_KWARGS_NAME[method]: dict(kwargs)})
    return model


def release_checkpointing_kwargs(model: torch.nn.Module) -> torch.nn.Module:
    """Undo what `prepare_model` did to the model's checkpointing enable method: later enable calls get only their
    own kwargs again. Checkpointing itself stays as it is (disable it with the model's own disable method)."""
    target = _without_peft(model)
    for method in _KWARGS_NAME:
        current = target.__dict__.get(method)
        if isinstance(current, KeptCheckpointingKwargs):
            if current.previous is None:
                delattr(target, method)
            else:
                setattr(target, method, current.previous)
    return model


# --- the public entry points --------------------------------------------------------------------------------------


def prepare_model(
    model: torch.nn.Module,
    peft_config: PeftConfig | None = None,
    args: Any = None,
    *,
    gradient_checkpointing: bool | None = None,
    gradient_checkpointing_kwargs: Mapping[str, Any] | None = None,
) -> torch.nn.Module:
    """Prepare `model` for training the way TRL's trainers do (see `explain` for the steps and why).

    `args` is any TrainingArguments (TRL configs included); it is read, never modified. Without a Trainer, pass
    `gradient_checkpointing=` / `gradient_checkpointing_kwargs=` instead (`{"selective": True}`: save attention,
    recompute the rest). Returns the model to train: a PeftModel when `peft_config` is given.
    """
    the_plan = plan(
        model,
        peft_config,
        args,
        gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs=gradient_checkpointing_kwargs,
    )
    return the_plan.apply(model)


def enable_checkpointing(
    model: torch.nn.Module, checkpointing_kwargs: Mapping[str, Any] | None = None
) -> torch.nn.Module:
    """Turn on gradient (activation) checkpointing with the method the installed transformers prefers, the
    non-reentrant default everywhere, and the input-grad hook that PEFT and quantized models need."""
    validate(model, None)
    settings = Settings(checkpointing=True, checkpointing_kwargs=checkpointing_kwargs)
    steps = checkpointing_steps(model, settings, peft=is_peft_model(model), quantized=is_quantized(model))
    return Plan(tuple(steps)).apply(model)
