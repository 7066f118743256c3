"""prepare_model without a Trainer: keywords instead of args, a plain torch training loop."""

from __future__ import annotations

import math

import pytest
from conftest import assert_trained, snapshot

from compat import versions
from compat.scenarios import SCENARIOS, dataset, load, lora_config, skip_reason

pytest.importorskip("peft")


def train_loop(model, steps: int = 3) -> list[float]:
    import torch

    data = dataset(rows=4 * steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for step in range(steps):
        batch = data[4 * step: 4 * step + 4]
        ids = torch.tensor([row["input_ids"] for row in batch])
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", ["LoRA+GC", "Q-LoRA+GC"])
def test_custom_loop_with_checkpointing(name, tiny_model_path, layer_calls):
    import torch

    from compat import prepare_model

    scenario = next(s for s in SCENARIOS if s.name == name)
    reason = skip_reason(scenario, "cpu")
    if reason:
        pytest.skip(f"gate bnb_cpu_kbit: {reason}")
    model = prepare_model(load(scenario, tiny_model_path), lora_config(), gradient_checkpointing=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 3_584
    if scenario.qlora:
        assert {p.dtype for p in trainable} == {torch.bfloat16}
    before = snapshot(model)
    calls = layer_calls(model)
    losses = train_loop(model)
    assert calls.count == calls.layers * 3 * 2, "checkpointing did not recompute the layers"
    assert all(math.isfinite(x) for x in losses)
    assert_trained(model, before)


def test_custom_loop_checkpointing_kwargs_are_honoured(tiny_model_path):
    """use_reentrant=True asked explicitly: training still works (needs the input-grad hook on every version)."""
    from compat import explain, prepare_model

    scenario = next(s for s in SCENARIOS if s.name == "LoRA+GC")
    model = load(scenario, tiny_model_path)
    plan = explain(model, lora_config(), gradient_checkpointing=True,
                   gradient_checkpointing_kwargs={"use_reentrant": True})
    kwargs_key = "activation_checkpointing_kwargs" if versions.is_new("activation_checkpointing_names") \
        else "gradient_checkpointing_kwargs"
    assert plan["checkpointing"].params[kwargs_key] == {"use_reentrant": True}
    model = prepare_model(model, lora_config(), gradient_checkpointing=True,
                          gradient_checkpointing_kwargs={"use_reentrant": True})
    before = snapshot(model)
    losses = train_loop(model)
    assert all(math.isfinite(x) for x in losses)
    assert_trained(model, before)


def test_no_future_warning_from_our_calls(tiny_model_path):
    """On transformers >= 5.23 the old checkpointing names warn; nothing of ours may use them."""
    import warnings

    from compat import enable_checkpointing, prepare_model

    scenario = next(s for s in SCENARIOS if s.name == "LoRA+GC")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model = prepare_model(load(scenario, tiny_model_path), lora_config(), gradient_checkpointing=True)
        enable_checkpointing(load(scenario, tiny_model_path))
        train_loop(model, steps=1)
