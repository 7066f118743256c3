"""prepare_model without a Trainer: keywords instead of args, a plain torch training loop."""

from __future__ import annotations

import math

import pytest
from conftest import assert_trained, snapshot

from compat import versions
from compat.scenarios import SCENARIOS, load, lora_config, skip_reason, train_loop

pytest.importorskip("peft")


@pytest.mark.parametrize("name", ["LoRA+GC", "Q-LoRA+GC"])
def test_custom_loop_with_checkpointing(name, tiny_model_path, layer_calls, checkpoint_calls):
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
    assert checkpoint_calls.use_reentrant() == {False}
    assert all(math.isfinite(x) for x in losses)
    assert_trained(model, before)


def test_custom_loop_checkpointing_kwargs_are_honoured(tiny_model_path):
    """use_reentrant=True asked explicitly: training still works (needs the input-grad hook on every version)."""
    from compat import explain, prepare_model

    scenario = next(s for s in SCENARIOS if s.name == "LoRA+GC")
    model = load(scenario, tiny_model_path)
    plan = explain(
        model, lora_config(), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
    )
    kwargs_key = (
        "activation_checkpointing_kwargs"
        if versions.is_new("activation_checkpointing_names")
        else "gradient_checkpointing_kwargs"
    )
    assert plan["checkpointing"].params[kwargs_key] == {"use_reentrant": True}
    model = prepare_model(
        model, lora_config(), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
    )
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


def _attention_calls_and_grads(model) -> tuple[int, dict]:
    """One forward/backward: how many times the SDPA kernel ran (forward ops, recomputation included) and the grads."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountAttention(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func)
            if "scaled_dot_product" in name and "backward" not in name:
                self.count += 1
            return func(*args, **(kwargs or {}))

    ids = torch.randint(0, 1000, (2, 32), generator=torch.Generator().manual_seed(0))
    model.train()
    with CountAttention() as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    return counter.count, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_selective_checkpointing_saves_attention_and_changes_no_gradient(tiny_model_path, checkpoint_calls):
    """gradient_checkpointing_kwargs={'selective': True} (TRL's key): the attention kernel is not run again in the
    backward pass, the gradients are those of full checkpointing, and the key never reaches torch."""
    import torch

    from compat import explain, prepare_model

    scenario = next(s for s in SCENARIOS if s.name == "LoRA+GC")
    runs = {}
    for label, kwargs in (("full", None), ("selective", {"selective": True})):
        torch.manual_seed(0)  # the same adapter initialisation for both
        model = load(scenario, tiny_model_path)
        planned = explain(model, lora_config(), gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)
        if kwargs:
            assert "selective" in planned["checkpointing"].reason
        checkpoint_calls.calls.clear()
        model = prepare_model(model, lora_config(), gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)
        runs[label] = (*_attention_calls_and_grads(model), set(checkpoint_calls.keys()))
    layers = 2
    (full_calls, full_grads, full_keys), (sel_calls, sel_grads, sel_keys) = runs["full"], runs["selective"]
    assert full_calls == 2 * layers, "full checkpointing recomputes attention in the backward pass"
    assert sel_calls == layers, "selective checkpointing must save attention, not recompute it"
    assert "context_fn" in sel_keys and "context_fn" not in full_keys
    assert "selective" not in sel_keys, "TRL's key reached torch's checkpoint"
    for name, grad in full_grads.items():
        torch.testing.assert_close(sel_grads[name], grad, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs,keywords,message",
    [
        ({"selective": True}, {"gradient_checkpointing": False}, "needs gradient_checkpointing=True"),
        ({"selective": True, "use_reentrant": True}, {"gradient_checkpointing": True}, "non-reentrant"),
    ],
)
def test_selective_checkpointing_refuses_what_cannot_work(tiny_model_path, kwargs, keywords, message):
    from compat import prepare_model

    model = load(next(s for s in SCENARIOS if s.name == "LoRA"), tiny_model_path)
    with pytest.raises(ValueError, match=message):
        prepare_model(model, lora_config(), gradient_checkpointing_kwargs=kwargs, **keywords)
    assert type(model).__name__ != "PeftModelForCausalLM"
