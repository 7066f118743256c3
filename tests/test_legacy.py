"""The deprecated wrappers: old TRL signatures, one FutureWarning naming the replacement, a model that trains."""

from __future__ import annotations

import math
import warnings

import pytest
from conftest import assert_trained, snapshot
from test_custom_loop import train_loop

from compat.scenarios import SCENARIOS, dataset, load, lora_config, skip_reason, training_args

pytest.importorskip("peft")
LORA_GC = next(s for s in SCENARIOS if s.name == "LoRA+GC")
QLORA_GC = next(s for s in SCENARIOS if s.name == "Q-LoRA+GC")


def future_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FutureWarning)]


def call_twice(func, *args):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = func(*args)
        func(*args)
    return first, future_warnings(record)


def test_prepare_peft_model_is_a_drop_in(tiny_model_path, tmp_path):
    from peft import PeftModel
    from transformers import Trainer

    from compat import prepare_peft_model  # was: from trl.models import prepare_peft_model

    args = training_args(LORA_GC, str(tmp_path), steps=3, device="cpu")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = prepare_peft_model(load(LORA_GC, tiny_model_path), lora_config(), args)
        prepare_peft_model(load(LORA_GC, tiny_model_path), lora_config(), args)
    messages = future_warnings(record)
    assert len(messages) == 1 and "compat.prepare_model" in messages[0]
    assert isinstance(model, PeftModel)
    before = snapshot(model)
    trainer = Trainer(model=model, args=args, train_dataset=dataset())
    trainer.train()
    assert all(math.isfinite(e["loss"]) for e in trainer.state.log_history if "loss" in e)
    assert_trained(model, before)


def test_prepare_peft_model_merges_an_existing_adapter_like_trl(tiny_model_path, tmp_path):
    import torch
    from peft import PeftModel, get_peft_model

    from compat import prepare_peft_model

    base = load(LORA_GC, tiny_model_path)
    first = get_peft_model(base, lora_config(r=4, init_lora_weights=False))  # non-zero delta, so merging shows
    with torch.no_grad():
        expected_q = first.base_model.model.model.layers[0].self_attn.q_proj.get_delta_weight("default")
        expected_q = expected_q + first.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    args = training_args(LORA_GC, str(tmp_path), steps=1, device="cpu")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = prepare_peft_model(first, lora_config(r=8), args)
    user = [str(w.message) for w in record if w.category is UserWarning]
    assert any("merged" in m and "save" in m.lower() for m in user)
    assert isinstance(model, PeftModel)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q_proj.lora_A["default"].weight.shape[0] == 8  # the new adapter only
    torch.testing.assert_close(q_proj.base_layer.weight, expected_q.to(q_proj.base_layer.weight.dtype))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 3_584


def test_enable_gradient_checkpointing_wrapper(tiny_model_path, layer_calls):
    from peft import get_peft_model

    from compat import enable_gradient_checkpointing

    model = get_peft_model(load(LORA_GC, tiny_model_path), lora_config())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        enable_gradient_checkpointing(model, {"use_reentrant": False})
        enable_gradient_checkpointing(model, None)
    messages = future_warnings(record)
    assert len(messages) == 1 and "compat.enable_checkpointing" in messages[0]
    before = snapshot(model)
    calls = layer_calls(model)
    train_loop(model)
    assert calls.count == calls.layers * 3 * 2
    assert_trained(model, before)


def test_prepare_model_for_kbit_training_wrapper(tiny_model_path):
    import torch
    from peft import get_peft_model

    from compat import prepare_model_for_kbit_training

    reason = skip_reason(QLORA_GC, "cpu")
    if reason:
        pytest.skip(f"gate bnb_cpu_kbit: {reason}")
    model = load(QLORA_GC, tiny_model_path)
    float_dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = prepare_model_for_kbit_training(model)
    messages = future_warnings(record)
    assert len(messages) == 1 and "compat.prepare_model" in messages[0]
    assert not any(p.requires_grad for p in model.parameters())
    # unlike peft's function of that name: no fp32 upcast of the non-quantized parameters
    assert {p.dtype for p in model.parameters() if p.is_floating_point()} == float_dtypes
    assert torch.float32 not in float_dtypes
    model = get_peft_model(model, lora_config())
    before = snapshot(model)
    losses = train_loop(model)
    assert all(math.isfinite(x) for x in losses)
    assert_trained(model, before)


def test_peft_module_casting_to_bf16_wrapper(tiny_model_path):
    import torch
    from peft import get_peft_model

    from compat import peft_module_casting_to_bf16

    model = get_peft_model(load(LORA_GC, tiny_model_path), lora_config())
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    norms = {n: p.dtype for n, p in model.named_parameters() if "norm" in n}
    model, messages = call_twice(peft_module_casting_to_bf16, model)
    assert len(messages) == 1 and "compat.cast_trainable_params" in messages[0]
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}
    assert {n: p.dtype for n, p in model.named_parameters() if "norm" in n} == norms  # no fp32 norm upcast
    before = snapshot(model)
    train_loop(model)
    assert_trained(model, before)
