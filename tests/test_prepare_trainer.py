"""The seven scenarios of TRL PR #4577 through compat.prepare_model + transformers.Trainer, for real; what torch's
checkpoint receives during Trainer.train(); adapters seeded from args.seed."""

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
def test_scenario_trains_with_trainer(
    scenario, tiny_model_path, qwen3_available, tmp_path, layer_calls, checkpoint_calls
):
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
    # ... and non-reentrant on every version, although transformers 4.x's Trainer.train() enables it again from args
    # (which say nothing about use_reentrant, so its reentrant default would apply)
    assert len(checkpoint_calls.calls) == (calls.layers * 3 if scenario.gc else 0)
    if scenario.gc:
        assert checkpoint_calls.use_reentrant() == {False}
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


def test_release_gives_the_trainer_its_own_default_again(tiny_model_path, tmp_path, checkpoint_calls):
    """compat.release_checkpointing_kwargs undoes the kept kwargs: Trainer.train() then gets transformers' default,
    reentrant on 4.x (what every 4.x run did before), non-reentrant on 5.x."""
    from transformers import Trainer

    from compat import prepare_model, release_checkpointing_kwargs

    scenario = SCENARIOS[4]  # LoRA+GC
    args = training_args(scenario, str(tmp_path), steps=1, device="cpu")
    model = prepare_model(load(scenario, tiny_model_path), lora_config(), args)
    prepare_model(model, None, args)  # preparing again keeps one wrapper, not a chain
    base = model.get_base_model()
    kept = [name for name, value in vars(base).items() if type(value).__name__ == "KeptCheckpointingKwargs"]
    assert len(kept) == 1
    assert release_checkpointing_kwargs(model) is model
    assert not [name for name, value in vars(base).items() if type(value).__name__ == "KeptCheckpointingKwargs"]
    Trainer(model=model, args=args, train_dataset=dataset()).train()
    assert checkpoint_calls.use_reentrant() == {not versions.is_new("non_reentrant_default")}


def test_callers_own_kwargs_win_over_the_kept_ones(tiny_model_path, checkpoint_calls):
    import torch

    from compat import prepare_model
    from compat.scenarios import train_loop

    scenario = SCENARIOS[4]
    model = prepare_model(load(scenario, tiny_model_path), lora_config(), gradient_checkpointing=True)
    method = next(m for m in ("activation_checkpointing_enable", "gradient_checkpointing_enable") if hasattr(model, m))
    getattr(model, method)(**{method.replace("_enable", "_kwargs"): {"use_reentrant": True}})
    train_loop(model, steps=1)
    assert checkpoint_calls.use_reentrant() == {True}
    checkpoint_calls.calls.clear()
    getattr(model, method)()  # no kwargs of its own: compat's come back
    assert torch.isfinite(torch.tensor(train_loop(model, steps=1))).all()
    assert checkpoint_calls.use_reentrant() == {False}


def _adapter(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_adapters_are_initialised_from_args_seed(tiny_model_path, tmp_path):
    """As TRL seeds before get_peft_model: the same args.seed gives the same adapters whatever the global RNG holds,
    another seed other adapters, and the caller's RNG state is exactly as it was."""
    import random

    import torch

    from compat import prepare_model

    scenario = SCENARIOS[3]  # LoRA
    init = lora_config(init_lora_weights="gaussian")  # lora_A and lora_B both random, so both must match
    made = {}
    for label, seed, noise in (("a", 7, 1), ("b", 7, 2), ("c", 8, 1)):
        torch.manual_seed(noise)  # a different global state before each
        random.seed(noise)
        args = training_args(scenario, str(tmp_path), steps=1, device="cpu", seed=seed)
        state, py_state = torch.random.get_rng_state(), random.getstate()
        made[label] = _adapter(prepare_model(load(scenario, tiny_model_path), init, args))
        assert torch.equal(torch.random.get_rng_state(), state), "prepare_model changed the global torch RNG"
        assert random.getstate() == py_state
    assert made["a"] and all(torch.equal(made["a"][n], made["b"][n]) for n in made["a"])
    assert not all(torch.equal(made["a"][n], made["c"][n]) for n in made["a"])
    # Without args nothing is seeded: the adapters follow the global RNG, as with get_peft_model itself.
    torch.manual_seed(7)
    first = _adapter(prepare_model(load(scenario, tiny_model_path), init))
    second = _adapter(prepare_model(load(scenario, tiny_model_path), init))
    assert not all(torch.equal(first[n], second[n]) for n in first)
