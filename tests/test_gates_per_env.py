"""Per env: every version-dependent step of the preparation, asserted against what the gate table says.

Two kinds of checks, both keyed by gate name:
- the *fact*: the installed libraries really behave as the gate's side says (no compat involved), so a wrong row in
  compat/versions.py fails in the env that disproves it;
- the *step*: what compat plans (explain) and does (prepare_model, pretrained_kwargs) on this side of the gate.
A check that cannot run here (CPU 4-bit below transformers 4.53 / bitsandbytes 0.47) skips with the gate's name.
The last test fails when a gate of compat/versions.py has no check here.
Also here: the ZeRO-3 and FSDP parts of the plan, from `args` that carry those settings (explain only: no DeepSpeed).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from compat import versions
from compat.scenarios import lora_config, train_loop

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
CHECKED: set[str] = set()  # gates with at least one check below


def gate(name: str):
    """Decorator: marks a test as checking gate `name` (the name must exist in the table)."""
    assert name in versions.GATES_BY_NAME, f"unknown gate {name}"
    CHECKED.add(name)
    return lambda func: func


def new(name: str) -> bool:
    return versions.is_new(name)


def need_peft():
    pytest.importorskip("peft", reason="peft is not installed")


def need_cpu_kbit():
    g = versions.GATES_BY_NAME["bnb_cpu_kbit"]
    if versions.installed("bitsandbytes") is None:
        pytest.skip(f"gate bnb_cpu_kbit: bitsandbytes is not installed in this env (needs {g.requirement})")
    if not new("bnb_cpu_kbit"):
        pytest.skip(f"gate bnb_cpu_kbit (old side): 4-bit/8-bit on the CPU needs {g.requirement}")


def load(path, dtype="auto", device_map=None, **quant):
    from transformers import AutoModelForCausalLM

    from compat import pretrained_kwargs

    kwargs = pretrained_kwargs(dtype, **quant)
    if quant or device_map:
        kwargs["device_map"] = device_map or {"": "cpu"}
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def load_4bit(path, compute="float16"):
    return load(
        path,
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def gc_funcs(model):
    return [
        m._gradient_checkpointing_func
        for m in model.modules()
        if getattr(m, "gradient_checkpointing", False) and hasattr(m, "_gradient_checkpointing_func")
    ]


def reentrant_flags(model) -> set:
    funcs = gc_funcs(model)
    assert funcs, "no checkpointed layers"
    # transformers wraps torch.utils.checkpoint.checkpoint in functools.partial(..., **kwargs)
    return {getattr(f, "keywords", {}).get("use_reentrant", "unset") for f in funcs}


def enable_gc_raw(model, **kwargs):
    """transformers' own call (no compat), with the name this version prefers."""
    if new("activation_checkpointing_names"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs or None)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or None)


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)


# --- loading: dtype_kwarg, default_dtype_auto, load_in_kbit_removed ---------------------------------------------


@gate("dtype_kwarg")
def test_pretrained_kwargs_uses_the_dtype_keyword_of_this_transformers():
    from compat import pretrained_kwargs

    keyword = "dtype" if new("dtype_kwarg") else "torch_dtype"
    assert pretrained_kwargs("bfloat16") == {keyword: torch.bfloat16}
    assert pretrained_kwargs(torch.float16) == {keyword: torch.float16}
    assert pretrained_kwargs() == {keyword: "auto"}


@gate("dtype_kwarg")
def test_fact_dtype_keyword(tiny_model_path):
    from transformers import AutoModelForCausalLM

    if new("dtype_kwarg"):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float16)
        assert next(model.parameters()).dtype == torch.float16
        model.config.to_json_string()  # serialisable on this side
    else:
        with pytest.raises(TypeError):
            model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float16)
            model.config.to_json_string()
    # The keyword compat picks works on either side.
    assert next(load(tiny_model_path, "float16").parameters()).dtype == torch.float16


@gate("default_dtype_auto")
def test_fact_default_dtype_and_the_explicit_dtype_we_always_pass(tiny_model_path):
    from transformers import AutoModelForCausalLM

    # The tiny checkpoint is saved in bf16.
    implicit = next(AutoModelForCausalLM.from_pretrained(tiny_model_path).parameters()).dtype
    assert implicit == (torch.bfloat16 if new("default_dtype_auto") else torch.float32)
    # compat always passes a dtype, so both sides load the same thing.
    assert next(load(tiny_model_path).parameters()).dtype == torch.bfloat16
    assert next(load(tiny_model_path, "float32").parameters()).dtype == torch.float32


@gate("load_in_kbit_removed")
def test_pretrained_kwargs_never_passes_the_removed_flags():
    if versions.installed("bitsandbytes") is None:
        pytest.skip("gate load_in_kbit_removed: quantization_config needs bitsandbytes, not installed in this env")
    from transformers import BitsAndBytesConfig

    from compat import pretrained_kwargs

    for flag in ("load_in_4bit", "load_in_8bit"):
        kwargs = pretrained_kwargs("bfloat16", **{flag: True})
        assert flag not in kwargs and "load_in_4bit" not in kwargs and "load_in_8bit" not in kwargs
        config = kwargs["quantization_config"]
        assert isinstance(config, BitsAndBytesConfig) and getattr(config, flag) is True
    config = pretrained_kwargs("bfloat16", load_in_4bit=True, bnb_4bit_compute_dtype="float16")["quantization_config"]
    assert config.bnb_4bit_compute_dtype == torch.float16


@gate("load_in_kbit_removed")
def test_fact_load_in_4bit_keyword(tiny_model_path):
    from transformers import AutoModelForCausalLM

    if new("load_in_kbit_removed"):
        with pytest.raises(TypeError, match="load_in_4bit"):
            AutoModelForCausalLM.from_pretrained(tiny_model_path, load_in_4bit=True)  # compat: skip
        return
    need_cpu_kbit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(
            tiny_model_path, load_in_4bit=True, device_map={"": "cpu"}
        )  # compat: skip
    assert model.is_loaded_in_4bit


# --- checkpointing: non_reentrant_default, activation_checkpointing_names ---------------------------------------


@gate("non_reentrant_default")
def test_fact_reentrant_default(tiny_model_path):
    model = load(tiny_model_path)
    enable_gc_raw(model)
    assert reentrant_flags(model) == {not new("non_reentrant_default")}


@gate("non_reentrant_default")
def test_plan_sets_non_reentrant_on_every_version(tiny_model_path):
    need_peft()
    from compat import explain, prepare_model

    model = load(tiny_model_path)
    planned = explain(model, lora_config(), gradient_checkpointing=True)["checkpointing"]
    kwargs = planned.params.get("activation_checkpointing_kwargs", planned.params.get("gradient_checkpointing_kwargs"))
    # Always explicit (torch warns without the keyword): 4.x's reentrant default is overridden, 5.x's restated.
    assert kwargs == {"use_reentrant": False}
    assert planned.gate == "non_reentrant_default"
    assert "4.x defaults to reentrant" in planned.reason
    prepared = prepare_model(model, lora_config(), gradient_checkpointing=True)
    assert reentrant_flags(prepared) == {False}, "non-reentrant checkpointing on every version"


@gate("non_reentrant_default")
def test_callers_use_reentrant_is_honoured(tiny_model_path):
    need_peft()
    from compat import explain, prepare_model

    model = load(tiny_model_path)
    planned = explain(
        model, lora_config(), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
    )
    assert {"use_reentrant": True}.items() <= dict(
        planned["checkpointing"].params.get("activation_checkpointing_kwargs")
        or planned["checkpointing"].params.get("gradient_checkpointing_kwargs")
    ).items()
    prepared = prepare_model(
        model, lora_config(), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
    )
    assert reentrant_flags(prepared) == {True}
    assert all(math.isfinite(x) for x in train_loop(prepared)), "reentrant + PEFT trains thanks to the input-grad hook"


@gate("activation_checkpointing_names")
def test_fact_and_plan_checkpointing_method_names(tiny_model_path):
    need_peft()
    from compat import explain, prepare_model

    model = load(tiny_model_path)
    assert hasattr(model, "activation_checkpointing_enable") == new("activation_checkpointing_names")
    assert hasattr(model, "gradient_checkpointing_enable")  # the old name stays (alias on >= 5.23)
    planned = explain(model, lora_config(), gradient_checkpointing=True)["checkpointing"]
    if new("activation_checkpointing_names"):
        assert planned.params["method"] == "activation_checkpointing_enable"
        assert "activation_checkpointing_kwargs" in planned.params
        with pytest.warns(FutureWarning):  # the fact: the old name warns on this side
            load(tiny_model_path).gradient_checkpointing_enable()
    else:
        assert planned.params["method"] == "gradient_checkpointing_enable"
        assert "gradient_checkpointing_kwargs" in planned.params
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare_model(model, lora_config(), gradient_checkpointing=True)
    ours = [
        str(w.message) for w in caught if issubclass(w.category, FutureWarning) and "checkpointing" in str(w.message)
    ]
    assert ours == [], f"FutureWarning from compat's own calls: {ours}"
    assert gc_funcs(prepared)


# --- input_grads_builtin ------------------------------------------------------------------------------------------


def _embedding_hooks(model) -> int:
    return len(model.get_input_embeddings()._forward_hooks)


@gate("input_grads_builtin")
def test_fact_42489_peft_plus_reentrant_checkpointing_without_the_hook(tiny_model_path):
    """transformers #42489: without the input-grad hook a frozen-embedding model gets no gradient through reentrant
    checkpointing on 4.x; 5.x registers the hook itself when checkpointing is enabled."""
    need_peft()
    from peft import get_peft_model

    model = get_peft_model(load(tiny_model_path, "float32"), lora_config())
    enable_gc_raw(model, use_reentrant=True)  # after get_peft_model, as the 4.x Trainer does
    if new("input_grads_builtin"):
        assert _embedding_hooks(model) >= 1
        assert all(math.isfinite(x) for x in train_loop(model))
    else:
        assert _embedding_hooks(model) == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RuntimeError, match="does not require grad"):
                train_loop(model)


@gate("input_grads_builtin")
def test_input_grad_hook_present_after_prepare(tiny_model_path):
    need_peft()
    from compat import explain, prepare_model

    model = load(tiny_model_path)
    planned = explain(model, lora_config(), gradient_checkpointing=True)
    assert planned.names.index("input_require_grads") == planned.names.index("checkpointing") + 1
    assert planned["input_require_grads"].gate == "input_grads_builtin"
    prepared = prepare_model(model, lora_config(), gradient_checkpointing=True)
    assert _embedding_hooks(prepared) >= 1, "the input-grad hook is missing"
    ids = torch.tensor([[1, 2, 3]])
    assert prepared.get_input_embeddings()(ids).requires_grad
    before = {n: p.detach().clone() for n, p in prepared.named_parameters() if p.requires_grad}
    assert all(math.isfinite(x) for x in train_loop(prepared))
    assert all(not torch.equal(p, before[n]) for n, p in prepared.named_parameters() if p.requires_grad)


# --- hybrid_cache_removed -----------------------------------------------------------------------------------------


def _guard_needed() -> bool:
    return (
        new("hybrid_cache_removed") and versions.at_least("peft", "0.16.0") and not versions.at_least("peft", "0.18.0")
    )


@gate("hybrid_cache_removed")
def test_fact_hybrid_cache_and_plain_import_peft():
    need_peft()
    proc = run_python("import transformers; print(hasattr(transformers, 'HybridCache'))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(not new("hybrid_cache_removed"))
    # `import peft` without compat: broken exactly where the guard is needed (t500-p017).
    proc = run_python("import peft")
    if _guard_needed():
        assert proc.returncode != 0 and "HybridCache" in proc.stderr, proc.stderr[-2000:]
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]


@gate("hybrid_cache_removed")
def test_import_peft_after_import_compat_works_everywhere():
    need_peft()
    code = (
        "import sys, compat\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'import compat is not cheap'\n"
        "import peft, transformers\n"
        "from peft import LoraConfig, get_peft_model, PeftModel\n"
        "print(hasattr(transformers, 'HybridCache'))\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The placeholder only appears where it is needed; elsewhere transformers is left untouched.
    assert proc.stdout.strip().splitlines()[-1] == str(_guard_needed() or not new("hybrid_cache_removed"))


@gate("hybrid_cache_removed")
def test_lora_trains_through_compat_in_a_fresh_process(tiny_model_path):
    """The t500-p017 promise: peft imports and LoRA trains through compat (fresh interpreter: `import compat` first,
    then peft, exactly as a user script would)."""
    need_peft()
    code = f"""
import compat, torch
from transformers import AutoModelForCausalLM
from compat.scenarios import lora_config, train_loop
model = AutoModelForCausalLM.from_pretrained({tiny_model_path!r}, **compat.pretrained_kwargs("bfloat16"))
model = compat.prepare_model(model, lora_config(), gradient_checkpointing=True)
before = {{n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}}
train_loop(model)
changed = [not torch.equal(p, before[n]) for n, p in model.named_parameters() if p.requires_grad]
print(type(model).__name__, len(changed), all(changed))
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    name, count, changed = proc.stdout.split()[-3:]
    assert name.startswith("PeftModel") and count == "8" and changed == "True", proc.stdout


# --- bnb_cpu_kbit, autocast_adapter_dtype_4bit, QLoRA ---------------------------------------------------------------


@gate("bnb_cpu_kbit")
def test_fact_cpu_4bit_and_8bit(tiny_model_path):
    need_cpu_kbit()
    model = load_4bit(tiny_model_path)
    assert model.is_loaded_in_4bit
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.isfinite(model(input_ids=ids).logits).all()
    model8 = load(tiny_model_path, load_in_8bit=True)
    assert model8.is_loaded_in_8bit
    assert torch.isfinite(model8(input_ids=ids).logits.float()).all()


@gate("autocast_adapter_dtype_4bit")
def test_fact_autocast_false_on_4bit(tiny_model_path):
    need_peft()
    need_cpu_kbit()
    from peft import get_peft_model

    model = get_peft_model(load_4bit(tiny_model_path, compute="float16"), lora_config(), autocast_adapter_dtype=False)
    dtypes = {p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert dtypes == ({torch.float16} if new("autocast_adapter_dtype_4bit") else {torch.float32})


@pytest.mark.parametrize("compute", ["float16", "bfloat16"])
@gate("autocast_adapter_dtype_4bit")
def test_qlora_adapters_are_bf16_after_prepare_on_both_sides(tiny_model_path, compute):
    need_peft()
    need_cpu_kbit()
    from compat import explain, prepare_model

    model = load_4bit(tiny_model_path, compute=compute)
    planned = explain(model, lora_config(), gradient_checkpointing=True)
    assert planned.names[-1] == "cast_trainable"
    assert planned["cast_trainable"].gate == "autocast_adapter_dtype_4bit"
    assert planned["get_peft_model"].params == {}  # no autocast keyword for a quantized base
    prepared = prepare_model(model, lora_config(), gradient_checkpointing=True)
    trainable = {n: p for n, p in prepared.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {p.dtype for p in trainable.values()} == {torch.bfloat16}
    # Norms are not upcast to fp32 (the old kbit recipe did): every non-quantized frozen float stays as loaded.
    assert all(p.dtype != torch.float32 for n, p in prepared.named_parameters() if "norm" in n)
    before = {n: p.detach().clone() for n, p in trainable.items()}
    assert all(math.isfinite(x) for x in train_loop(prepared))
    assert all(not torch.equal(p, before[n]) for n, p in trainable.items())


@gate("bnb_cpu_kbit")
def test_8bit_lora_adapters_after_prepare(tiny_model_path):
    need_peft()
    need_cpu_kbit()
    from compat import explain, prepare_model

    model = load(tiny_model_path, load_in_8bit=True)
    assert "cast_trainable" in explain(model, lora_config()).names
    prepared = prepare_model(model, lora_config())
    assert {p.dtype for p in prepared.parameters() if p.requires_grad} == {torch.bfloat16}


# --- peft API gates ------------------------------------------------------------------------------------------------


@gate("autocast_adapter_dtype_kwarg")
def test_fact_autocast_keyword_and_plan_under_zero3(tiny_model_path):
    need_peft()
    from peft import get_peft_model

    from compat import explain

    assert ("autocast_adapter_dtype" in inspect.signature(get_peft_model).parameters) == new(
        "autocast_adapter_dtype_kwarg"
    )
    planned = explain(load(tiny_model_path), lora_config(), zero3_args(gradient_checkpointing=True))["get_peft_model"]
    if new("autocast_adapter_dtype_kwarg"):
        assert planned.params == {"autocast_adapter_dtype": False}
        assert planned.gate == "autocast_adapter_dtype_kwarg"
    else:
        assert planned.params == {}


@gate("int8_training_removed")
def test_fact_prepare_model_for_int8_training():
    need_peft()
    import peft

    assert hasattr(peft, "prepare_model_for_int8_training") != new("int8_training_removed")
    assert hasattr(peft, "prepare_model_for_kbit_training")


@gate("kbit_training_function")
def test_fact_prepare_model_for_kbit_training_exists():
    need_peft()
    import peft

    assert hasattr(peft, "prepare_model_for_kbit_training") == new("kbit_training_function")


@gate("bnb_quantization_config")
def test_fact_bitsandbytes_config_has_4bit():
    from transformers import BitsAndBytesConfig

    params = inspect.signature(BitsAndBytesConfig.__init__).parameters
    assert ("load_in_4bit" in params) == new("bnb_quantization_config")
    assert "load_in_8bit" in params


@gate("kbit_auto_clear_cache")
def test_fact_kbit_auto_clear_cache_keyword():
    need_peft()
    from peft import prepare_model_for_kbit_training

    params = inspect.signature(prepare_model_for_kbit_training).parameters
    assert ("auto_clear_cache" in params) == new("kbit_auto_clear_cache")
    assert {"use_gradient_checkpointing", "gradient_checkpointing_kwargs"} <= set(params)


@gate("python_floor")
def test_fact_python_floor():
    assert sys.version_info >= (3, 10)
    if new("python_floor"):
        assert versions.installed("python") >= versions.installed("python").__class__("3.10")
        requires = versions.metadata.metadata("transformers").get("Requires-Python", "")
        assert "3.1" in requires, requires  # >=3.10.0 or >=3.11.0


# --- prefix tuning with a device map: cache_key_cache_removed, prefix_tuning_device_map ----------------------------


def _filled_cache(layers: int = 2):
    from transformers import DynamicCache

    cache = DynamicCache()
    for idx in range(layers):
        cache.update(torch.zeros(1, 2, 3, 16), torch.zeros(1, 2, 3, 16), idx)
    return cache


@gate("cache_key_cache_removed")
def test_fact_cache_key_cache():
    assert hasattr(_filled_cache(), "key_cache") != new("cache_key_cache_removed")


@gate("prefix_tuning_device_map")
@gate("cache_key_cache_removed")
def test_fact_prefix_tuning_moves_its_cache_onto_the_device_map(tiny_model_path):
    """What peft's prefix tuning does with a device-mapped model in every forward pass: move its virtual keys to each
    layer's device. A CPU-only run has no accelerator, so the map names the CPU as a device (as a GPU map names one)."""
    need_peft()
    from peft.utils import integrations

    breaks = new("cache_key_cache_removed") and not new("prefix_tuning_device_map")
    map_cache_to_layer_device_map = getattr(integrations, "map_cache_to_layer_device_map", None)
    if map_cache_to_layer_device_map is None:  # older peft does not move the cache at all: nothing reads key_cache
        assert not breaks
        return
    model = load(tiny_model_path, "float32", device_map={"": "cpu"})
    model.hf_device_map = {"": torch.device("cpu")}
    if breaks:
        with pytest.raises(AttributeError, match="key_cache"):
            map_cache_to_layer_device_map(model, _filled_cache())
    else:
        map_cache_to_layer_device_map(model, _filled_cache())


@gate("prefix_tuning_device_map")
def test_prefix_tuning_with_a_device_map_is_refused_where_it_would_fail(tiny_model_path):
    need_peft()
    from peft import PeftModel, PrefixTuningConfig

    from compat import prepare_model

    config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    model = load(tiny_model_path, device_map={"": "cpu"})
    # peft moves the cache only when transformers recorded a device map (5.x: not for a single-device map)
    if hasattr(model, "hf_device_map") and new("cache_key_cache_removed") and not new("prefix_tuning_device_map"):
        with pytest.raises(ValueError, match=r"peft>=0\.18.*device_map"):
            prepare_model(model, config)
        assert not any(p.requires_grad is False for p in model.parameters()), "the model was touched"
    else:
        assert isinstance(prepare_model(model, config), PeftModel)
    # Without a device map prefix tuning is prepared on every version.
    assert isinstance(prepare_model(load(tiny_model_path), config), PeftModel)


# --- ZeRO-3 and FSDP settings in args (explain; DeepSpeed itself is not installed) ----------------------------------


def zero3_args(**kw):
    return SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3), **kw)


def zero3_variants(tmp_path):
    path = tmp_path / "ds_zero3.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    return {
        "deepspeed_plugin": zero3_args(gradient_checkpointing=True),
        "deepspeed dict": SimpleNamespace(gradient_checkpointing=True, deepspeed={"zero_optimization": {"stage": 3}}),
        "deepspeed json path": SimpleNamespace(gradient_checkpointing=True, deepspeed=str(path)),
    }


def _ckpt_kwargs(planned) -> dict:
    params = planned["checkpointing"].params
    return dict(params.get("activation_checkpointing_kwargs") or params.get("gradient_checkpointing_kwargs") or {})


@gate("non_reentrant_default")
def test_zero3_forces_reentrant_and_keeps_the_adapter_dtype(tiny_model_path, tmp_path):
    need_peft()
    from compat import explain

    model = load(tiny_model_path)
    for label, args in zero3_variants(tmp_path).items():
        before = repr(args)
        planned = explain(model, lora_config(), args)
        assert planned.names[:4] == ["validate", "get_peft_model", "checkpointing", "input_require_grads"], label
        assert _ckpt_kwargs(planned)["use_reentrant"] is True, label
        assert "ZeRO-3" in planned["checkpointing"].reason, label
        assert planned["get_peft_model"].params == {"autocast_adapter_dtype": False}, label
        assert repr(args) == before, f"{label}: args were changed"
    # A caller's use_reentrant=False cannot stand under ZeRO-3 with PEFT: overridden, with a warning.
    args = zero3_args(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
    with pytest.warns(UserWarning, match="use_reentrant"):
        planned = explain(model, lora_config(), args)
    assert _ckpt_kwargs(planned)["use_reentrant"] is True
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}, "args were changed"


def test_zero3_refuses_selective_checkpointing_with_peft(tiny_model_path):
    need_peft()
    from compat import explain

    args = zero3_args(gradient_checkpointing=True, gradient_checkpointing_kwargs={"selective": True})
    with pytest.raises(ValueError, match="ZeRO-3"):
        explain(load(tiny_model_path), lora_config(), args)
    assert "selective" in _ckpt_kwargs(explain(load(tiny_model_path), None, args))  # full fine-tuning: fine


def test_zero_stage_2_and_no_peft_are_not_zero3_plans(tiny_model_path, tmp_path):
    need_peft()
    from compat import explain

    model = load(tiny_model_path)
    stage2 = SimpleNamespace(gradient_checkpointing=True, deepspeed={"zero_optimization": {"stage": 2}})
    planned = explain(model, lora_config(), stage2)
    assert planned["get_peft_model"].params == {}
    assert _ckpt_kwargs(planned).get("use_reentrant") is False
    # Full fine-tuning under ZeRO-3: nothing about adapters; reentrant not forced (that is for PEFT).
    planned = explain(model, None, zero3_args(gradient_checkpointing=True))
    assert "get_peft_model" not in planned.names
    assert _ckpt_kwargs(planned).get("use_reentrant") is not True


def test_zero3_with_a_quantized_base_does_not_pass_autocast(tiny_model_path):
    need_peft()
    need_cpu_kbit()
    from compat import explain

    planned = explain(load_4bit(tiny_model_path), lora_config(), zero3_args(gradient_checkpointing=True))
    assert planned["get_peft_model"].params == {}
    assert _ckpt_kwargs(planned)["use_reentrant"] is True
    assert "cast_trainable" in planned.names


@pytest.mark.parametrize("fsdp", ["full_shard auto_wrap", ["full_shard", "auto_wrap"]])
def test_fsdp_gives_one_dtype_for_a_fresh_model(tiny_model_path, fsdp):
    need_peft()
    from compat import explain, prepare_model

    args = SimpleNamespace(fsdp=fsdp, gradient_checkpointing=False)
    model = load(tiny_model_path)  # bf16 checkpoint
    planned = explain(model, lora_config(), args)
    # Either an explicit uniform_dtype step or adapters created in the base dtype (autocast_adapter_dtype=False).
    if "uniform_dtype" in planned.names:
        assert planned["uniform_dtype"].params == {"dtype": "bfloat16"}
    else:
        assert planned["get_peft_model"].params == {"autocast_adapter_dtype": False}, str(planned)
        assert "FSDP" in planned["get_peft_model"].reason
    prepared = prepare_model(model, lora_config(), args)
    assert {p.dtype for p in prepared.parameters()} == {torch.bfloat16}, "FSDP needs one dtype for all parameters"
    # Without FSDP the adapters are fp32 (peft's autocast) on a bf16 base: the FSDP setting is what changed that.
    plain = prepare_model(load(tiny_model_path), lora_config())
    assert {p.dtype for p in plain.parameters() if p.requires_grad} == {torch.float32}


def test_fsdp_plans_uniform_dtype_for_an_existing_adapter(tiny_model_path):
    """A PeftModel whose adapters peft upcast to fp32 on a bf16 base: FSDP needs them cast to the frozen dtype."""
    need_peft()
    from peft import get_peft_model

    from compat import explain, prepare_model

    model = get_peft_model(load(tiny_model_path), lora_config())
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    args = SimpleNamespace(fsdp="full_shard auto_wrap")
    planned = explain(model, None, args)
    assert planned.names[-1] == "uniform_dtype", str(planned)
    assert planned["uniform_dtype"].params == {"dtype": "bfloat16"}
    assert "FSDP" in planned["uniform_dtype"].reason
    prepared = prepare_model(model, None, args)
    assert {p.dtype for p in prepared.parameters()} == {torch.bfloat16}
    assert args.fsdp == "full_shard auto_wrap"
    plain = get_peft_model(load(tiny_model_path), lora_config())
    assert "uniform_dtype" not in explain(plain, None, SimpleNamespace()).names


def test_no_fsdp_no_uniform_dtype(tiny_model_path):
    need_peft()
    from compat import explain

    for args in (SimpleNamespace(fsdp=""), SimpleNamespace(fsdp=[]), SimpleNamespace()):
        assert "uniform_dtype" not in explain(load(tiny_model_path), lora_config(), args).names


# --- the Trainer API (the codemod's transformers rules decide their rewrites on these) ---------------------------


def _args_fields() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def _training_args(tmp_path, **kwargs):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **kwargs)


@gate("processing_class_kwarg")
def test_fact_trainer_and_callbacks_take_processing_class():
    from transformers import Trainer
    from transformers.trainer_callback import CallbackHandler

    assert ("processing_class" in inspect.signature(Trainer.__init__).parameters) == new("processing_class_kwarg")
    assert ("processing_class" in inspect.signature(CallbackHandler.__init__).parameters) == new(
        "processing_class_kwarg"
    )


@gate("eval_strategy_kwarg")
def test_fact_eval_strategy_field():
    assert ("eval_strategy" in _args_fields()) == new("eval_strategy_kwarg")


@gate("include_for_metrics_field")
def test_fact_include_for_metrics_field():
    assert ("include_for_metrics" in _args_fields()) == new("include_for_metrics_field")


@gate("training_args_v5_removals")
def test_fact_training_args_v5_removals():
    fields = _args_fields()
    gone = ("overwrite_output_dir", "save_safetensors", "no_cuda", "per_gpu_train_batch_size", "adafactor", "torchdynamo",
            "push_to_hub_token", "include_inputs_for_metrics", "use_mps_device", "past_index")  # fmt: skip
    assert {name in fields for name in gone} == {not new("training_args_v5_removals")}
    # the successors the codemod writes exist on both sides
    assert {"use_cpu", "per_device_train_batch_size", "hub_token", "hub_model_id", "torch_compile_backend"} <= fields


@gate("warmup_steps_fraction")
def test_fact_warmup_steps_fraction(tmp_path):
    if new("warmup_steps_fraction"):
        assert _training_args(tmp_path, warmup_steps=0.5, max_steps=10).get_warmup_steps(10) == 5
    else:
        with pytest.raises(ValueError, match="warmup_steps"):
            _training_args(tmp_path, warmup_steps=0.5, max_steps=10)
        assert _training_args(tmp_path, warmup_ratio=0.5, max_steps=10).get_warmup_steps(10) == 5


@gate("train_sampling_strategy")
def test_fact_train_sampling_strategy():
    fields = _args_fields()
    assert ("train_sampling_strategy" in fields) == new("train_sampling_strategy")
    assert ("group_by_length" in fields) != new("train_sampling_strategy")


@gate("tensorboard_logging_dir_env")
def test_fact_tensorboard_logging_dir_comes_from_the_environment():
    from transformers.integrations import TensorBoardCallback

    source = inspect.getsource(TensorBoardCallback)
    assert ("TENSORBOARD_LOGGING_DIR" in source) == new("tensorboard_logging_dir_env")
    assert ("args.logging_dir" in source) != new("tensorboard_logging_dir_env")


@gate("report_to_none_rejected")
def test_fact_report_to_none(tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM, Trainer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    args = _training_args(tmp_path, report_to=None)
    if new("report_to_none_rejected"):
        with pytest.raises(ValueError, match="None is not supported"):
            Trainer(model=model, args=args)
    else:
        assert isinstance(args.report_to, list) and None not in args.report_to  # "every installed integration"
        Trainer(model=model, args=args)


@gate("trainer_log_start_time")
def test_fact_trainer_log_takes_start_time():
    from transformers import Trainer

    assert ("start_time" in inspect.signature(Trainer.log).parameters) == new("trainer_log_start_time")


@gate("train_sampler_dataset_arg")
def test_fact_train_sampler_takes_the_dataset():
    from transformers import Trainer

    assert ("train_dataset" in inspect.signature(Trainer._get_train_sampler).parameters) == new(
        "train_sampler_dataset_arg"
    )


@gate("create_optimizer_model_arg")
def test_fact_create_optimizer_takes_the_model():
    from transformers import Trainer

    assert ("model" in inspect.signature(Trainer.create_optimizer).parameters) == new("create_optimizer_model_arg")


@gate("tokenizer_type_mapping_v5")
def test_fact_tokenizer_type_mapping():
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    assert ("llama" in TOKENIZER_MAPPING_NAMES) != new("tokenizer_type_mapping_v5")
    assert "gpt2" in TOKENIZER_MAPPING_NAMES


def _grad_norm(model_path, out, trainer_class, accumulation: int) -> float:
    """One SGD step over 4 examples (the same tokens per example: the mean over all equals the mean of the means),
    as `accumulation` micro-batches; the gradient norm the Trainer logs."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path).float()
    data = [{"input_ids": torch.arange(10 + i, 26 + i), "labels": torch.arange(10 + i, 26 + i)} for i in range(4)]
    args = TrainingArguments(
        output_dir=str(out), max_steps=1, per_device_train_batch_size=4 // accumulation,
        gradient_accumulation_steps=accumulation, optim="sgd", learning_rate=1e-3, max_grad_norm=1e9,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, seed=0,
    )  # fmt: skip
    trainer = trainer_class(model=model, args=args, train_dataset=data)
    trainer.train()
    return trainer.state.log_history[0]["grad_norm"]


def _mean_loss_trainer(declare_in_init: bool, class_attribute: bool):
    from transformers import Trainer

    class MeanLossTrainer(Trainer):
        if class_attribute:
            loss_is_scaled_for_ga = False

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if declare_in_init:
                self.model_accepts_loss_kwargs = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)  # the micro-batch's mean loss: num_items_in_batch is not used
            return (outputs.loss, outputs) if return_outputs else outputs.loss

    return MeanLossTrainer


def _accumulation_factor(model_path, out, trainer_class) -> float:
    """Gradient norm with 2 accumulated micro-batches over the norm with one batch of the same 4 examples, divided by
    the same ratio for the plain Trainer: 1.0 when the custom loss is scaled for accumulation like the Trainer's
    own (whatever the plain Trainer of this version does: 5.2-5.5 divide every accumulated loss twice)."""
    from transformers import Trainer

    def ratio(cls, name):
        return _grad_norm(model_path, out / f"{name}2", cls, 2) / _grad_norm(model_path, out / f"{name}1", cls, 1)

    return ratio(trainer_class, "custom") / ratio(Trainer, "plain")


@gate("custom_loss_ga_scaling")
def test_fact_a_declared_mean_loss_is_divided_by_the_accumulation_steps(tiny_model_path, tmp_path):
    trainer = _mean_loss_trainer(declare_in_init=True, class_attribute=False)
    factor = _accumulation_factor(tiny_model_path, tmp_path, trainer)
    assert factor == pytest.approx(1.0 if new("custom_loss_ga_scaling") else 2.0, rel=1e-3)  # 4.46-4.47: x GA


@gate("loss_is_scaled_for_ga")
def test_fact_loss_is_scaled_for_ga_class_attribute(tiny_model_path, tmp_path):
    from transformers import Trainer

    assert hasattr(Trainer, "loss_is_scaled_for_ga") == new("loss_is_scaled_for_ga")
    if not new("loss_is_scaled_for_ga") or not new("custom_loss_ga_scaling"):
        return
    trainer = _mean_loss_trainer(declare_in_init=False, class_attribute=True)
    assert _accumulation_factor(tiny_model_path, tmp_path, trainer) == pytest.approx(1.0, rel=1e-3)


# --- TRL (the codemod's TRL rules: what the target trl has; checked against the installed trl) -----------------


def _trl():
    trl = pytest.importorskip("trl", reason="trl is not installed (the e2e, trl-latest and trl-t457-p017 envs have it)")
    return trl


def _fields(cls) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls)}


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _trl_attr(module: str, name: str) -> bool:
    """`module` (a trl module) defines `name`, without importing what the name would import (lazy modules)."""
    import importlib

    if not _has_module(module):
        return False
    return name in dir(importlib.import_module(module))


def _trl_config(name: str):
    trl = _trl()
    if name in dir(trl):
        return getattr(trl, name)
    module = {"ORPOConfig": "trl.experimental.orpo", "CPOConfig": "trl.experimental.cpo"}[name]
    return getattr(__import__(module, fromlist=[name]), name)


def _sft_source() -> str:
    from trl import SFTTrainer

    return inspect.getsource(SFTTrainer)


# gate -> the fact on the installed trl: True exactly on the new side
TRL_FACTS = {
    "trl_processing_class": lambda: "processing_class" in inspect.signature(_trl().SFTTrainer.__init__).parameters,
    "trl_data_utils_processing_class": lambda: (
        "processing_class" in inspect.signature(_trl().maybe_apply_chat_template).parameters
    ),
    "trl_trainer_configs": lambda: "SFTConfig" in dir(_trl()),
    "trl_sft_max_length": lambda: "max_length" in _fields(_trl().SFTConfig),
    "trl_formatting_func_per_example": lambda: "batched = isinstance(formatting_func(" not in _sft_source(),
    "trl_sft_packing_knobs_removed": lambda: (
        not {"num_of_sequences", "chars_per_token", "dataset_batch_size"} & _fields(_trl().SFTConfig)
    ),
    "trl_sft_data_helpers_removed": lambda: (
        not _trl_attr("trl", "DataCollatorForCompletionOnlyLM")
        and not _trl_attr("trl.trainer", "ConstantLengthDataset")
    ),
    "trl_dpo_max_target_length_removed": lambda: "max_target_length" not in _fields(_trl().DPOConfig),
    "trl_dpo_is_encoder_decoder_removed": lambda: "is_encoder_decoder" not in _fields(_trl().DPOConfig),
    "trl_dpo_padding_value_removed": lambda: "padding_value" not in _fields(_trl().DPOConfig),
    "trl_dpo_fields_removed": lambda: (
        not {"max_prompt_length", "rpo_alpha", "reference_free", "generate_during_eval"} & _fields(_trl().DPOConfig)
        and "loss_weights" in _fields(_trl().DPOConfig)
    ),
    "trl_kto_prompt_length_removed": lambda: (
        not {"max_prompt_length", "max_completion_length"} & _fields(_trl_config("KTOConfig"))
    ),
    "trl_prompt_length_removed": lambda: (
        "max_prompt_length" not in _fields(_trl().GRPOConfig)
        and "vllm_guided_decoding_regex" not in _fields(_trl().GRPOConfig)
        and "vllm_structured_outputs_regex" in _fields(_trl().GRPOConfig)
        and not {"max_prompt_length", "label_pad_token_id"} & _fields(_trl_config("ORPOConfig"))
        and not {"max_prompt_length", "label_pad_token_id", "padding_value"} & _fields(_trl_config("CPOConfig"))
    ),
    "trl_grpo_log_unique_prompts": lambda: (
        "wandb_log_unique_prompts" not in _fields(_trl().GRPOConfig)
        and "log_unique_prompts" in _fields(_trl().GRPOConfig)
    ),
    "trl_grpo_vllm_device_removed": lambda: not {"vllm_device", "vllm_dtype"} & _fields(_trl().GRPOConfig),
    "trl_experimental_trainers": lambda: all(
        _has_module(f"trl.experimental.{m}") for m in ("orpo", "cpo", "online_dpo", "gkd")
    ),
    "trl_trainer_utils_moved": lambda: (
        _trl_attr("trl.experimental.utils", "DPODataCollatorWithPadding")
        and not _trl_attr("trl.trainer.utils", "DPODataCollatorWithPadding")
    ),
    "trl_pad_to_length_moved": lambda: (
        _trl_attr("trl.experimental.utils", "pad_to_length") and not _trl_attr("trl.trainer.utils", "pad_to_length")
    ),
    "trl_cli_utils_removed": lambda: "ScriptArguments" in dir(_trl()),
    "trl_top_level_utils_removed": lambda: "set_seed" not in dir(_trl()),
    "trl_setup_chat_format_removed": lambda: "setup_chat_format" not in dir(_trl()),
    "trl_dataset_formatting_removed": lambda: _trl() and not _has_module("trl.extras.dataset_formatting"),
    "trl_simple_chat_template_removed": lambda: not _trl_attr("trl.trainer.utils", "SIMPLE_CHAT_TEMPLATE"),
    "trl_kbit_device_map_removed": lambda: "get_kbit_device_map" not in dir(_trl()),
    "trl_old_ppo_api_removed": lambda: "PPOConfig" not in dir(_trl()) or "model_name" not in _fields(_trl().PPOConfig),
    "trl_ddpo_alignprop_removed": lambda: not {"DDPOTrainer", "AlignPropTrainer"} & set(dir(_trl())),
    "trl_core_removed": lambda: _trl() and not _has_module("trl.core"),
    "trl_ppo_removed": lambda: "PPOTrainer" not in dir(_trl()) and not _has_module("trl.experimental.ppo"),
    "trl_trainers_removed": lambda: (
        not {"BCOTrainer", "XPOTrainer", "NashMDTrainer", "PRMTrainer"} & set(dir(_trl()))
        and not _has_module("trl.experimental.bco")
    ),
    "trl_model_config_dtype": lambda: "dtype" in _fields(_trl().ModelConfig),
    "trl_trust_remote_code_on_configs": lambda: (
        "trust_remote_code" not in _fields(_trl().ModelConfig) and "trust_remote_code" in _fields(_trl().SFTConfig)
    ),
}
for _name in TRL_FACTS:
    gate(_name)


@pytest.mark.parametrize("name", sorted(TRL_FACTS))
def test_fact_trl_gate(name):
    """The installed trl is on the side of each TRL gate that the table says (the rewritten code's API exists)."""
    _trl()
    assert TRL_FACTS[name]() == new(name), f"gate {name}: trl {versions.installed('trl')} disagrees with the table"


# --- the table is fully checked -------------------------------------------------------------------------------------


def test_every_gate_has_a_per_env_check():
    missing = [g.name for g in versions.GATES if g.name not in CHECKED]
    assert not missing, f"gates without a check in tests/test_gates_per_env.py: {missing}"
