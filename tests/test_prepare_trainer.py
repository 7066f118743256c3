"""The seven scenarios of the design document through compat.prepare_model + transformers.Trainer, for real."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
from conftest import assert_trained, snapshot

from compat import versions
from compat.scenarios import SCENARIOS, dataset, load, lora_config, peft_config_for, skip_reason, training_args

pytest.importorskip("transformers")

# lora_config() on the tiny model: q_proj (64->64) and v_proj (64->32), r=8, 2 layers: 2*8*((64+64)+(64+32)).
LORA_TRAINABLE = 3_584
TOTAL = {"qwen3": 202_112, "qwen2": 202_304}  # Qwen2 stands in on transformers < 4.51
TOTAL_4BIT = 168_832  # with the adapter; packed 4-bit weights count half


def arg_fields(args) -> dict:
    return copy.deepcopy({f.name: getattr(args, f.name) for f in dataclasses.fields(args)})


def expected_total(scenario, qwen3_available) -> int:
    base = TOTAL["qwen3" if qwen3_available else "qwen2"]
    if scenario.qlora:
        return TOTAL_4BIT
    return base + (LORA_TRAINABLE if scenario.lora else 0)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_trains_with_trainer(scenario, tiny_model_path, qwen3_available, tmp_path, layer_calls):
    import torch
    from transformers import Trainer

    from compat import prepare_model

    reason = skip_reason(scenario, "cpu")
    if reason:
        pytest.skip(f"gate bnb_cpu_kbit: {reason}" if scenario.qlora else reason)
    model = load(scenario, tiny_model_path)
    args = training_args(scenario, str(tmp_path), steps=3, device="cpu")
    args_before = arg_fields(args)

    model = prepare_model(model, peft_config_for(scenario), args)
    assert arg_fields(args) == args_before, "prepare_model modified args"

    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = sum(p.numel() for p in model.parameters())
    assert total == expected_total(scenario, qwen3_available)
    if scenario.lora:
        from peft import PeftModel

        assert isinstance(model, PeftModel)
        assert sum(p.numel() for p in trainable.values()) == LORA_TRAINABLE
        assert all("lora_" in n for n in trainable)
    else:
        assert sum(p.numel() for p in trainable.values()) == total
    assert bool(getattr(model, "is_loaded_in_4bit", False)) == scenario.qlora

    frozen_floats = {p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()}
    base_dtype = torch.float16 if scenario.dtype == "float16" else torch.bfloat16  # the checkpoint is bf16
    if not scenario.lora:
        assert {p.dtype for p in trainable.values()} == {base_dtype}
    else:
        assert frozen_floats == {base_dtype}
        adapter = {p.dtype for p in trainable.values()}
        # QLoRA: bf16 adapters (step 6). LoRA on a bf16 base: peft >= 0.12 upcasts adapters to fp32.
        assert adapter == ({torch.bfloat16} if scenario.qlora else {torch.float32})

    before = snapshot(model)
    calls = layer_calls(model)
    trainer = Trainer(model=model, args=args, train_dataset=dataset())
    trainer.train()

    # checkpointing really on: each layer ran again in the backward pass (twice per step instead of once)
    assert calls.count == calls.layers * 3 * (2 if scenario.gc else 1)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert_trained(model, before)


def test_qlora_needs_the_cpu_gate_or_is_skipped_with_its_name():
    """Where 4-bit can't run on the CPU, the reason names the gate's requirement (never a silent drop)."""
    reason = skip_reason(SCENARIOS[5], "cpu")
    if versions.is_new("bnb_cpu_kbit"):
        assert reason is None
    else:
        assert reason and ("bitsandbytes" in reason)


def test_8bit_lora_trains(tiny_model_path, tmp_path):
    if not versions.is_new("bnb_cpu_kbit"):
        pytest.skip(f"gate bnb_cpu_kbit: 8-bit on the CPU needs {versions.GATES_BY_NAME['bnb_cpu_kbit'].requirement}")
    import torch
    from transformers import AutoModelForCausalLM, Trainer

    from compat import prepare_model, pretrained_kwargs
    from compat.scenarios import Scenario

    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_path, device_map={"": "cpu"}, **pretrained_kwargs("bfloat16", load_in_8bit=True)
    )
    assert model.is_loaded_in_8bit
    scenario = Scenario("8bit-LoRA+GC", lora=True, gc=True)
    args = training_args(scenario, str(tmp_path), steps=3, device="cpu")
    model = prepare_model(model, lora_config(), args)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}
    before = snapshot(model)
    trainer = Trainer(model=model, args=args, train_dataset=dataset())
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert all(math.isfinite(x) for x in losses)
    assert_trained(model, before)
