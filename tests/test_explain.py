"""explain(): the ordered steps for each scenario, with reasons and gates, without touching the model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import snapshot

from compat import versions
from compat.scenarios import SCENARIOS, load, lora_config, peft_config_for, skip_reason, training_args

pytest.importorskip("peft")

EXPECTED = {
    "FFT": ["validate"],
    "FFT+FP16": ["validate"],
    "FFT+GC": ["validate", "checkpointing"],
    "LoRA": ["validate", "get_peft_model"],
    "LoRA+GC": ["validate", "get_peft_model", "checkpointing", "input_require_grads"],
    "Q-LoRA": ["validate", "get_peft_model", "cast_trainable"],
    "Q-LoRA+GC": ["validate", "get_peft_model", "checkpointing", "input_require_grads", "cast_trainable"],
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_explain_lists_the_steps(scenario, tiny_model_path, tmp_path):
    import torch

    from compat import explain

    if skip_reason(scenario, "cpu"):
        pytest.skip(f"gate bnb_cpu_kbit: {skip_reason(scenario, 'cpu')}")
    model = load(scenario, tiny_model_path)
    before = snapshot(model)
    args = training_args(scenario, str(tmp_path), steps=1, device="cpu")
    plan = explain(model, peft_config_for(scenario), args)
    assert plan.names == EXPECTED[scenario.name]
    for step in plan:
        assert step.reason
        assert step.gate is None or step.gate in versions.GATES_BY_NAME
    text = str(plan)
    assert text.startswith("1. validate")
    if scenario.gc:
        method = (
            "activation_checkpointing_enable"
            if versions.is_new("activation_checkpointing_names")
            else "gradient_checkpointing_enable"
        )
        assert plan["checkpointing"].params["method"] == method
        assert "use_reentrant" in text and "[gate" in text
    # explain applied nothing
    assert type(model).__name__ != "PeftModel"
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_explain_same_plan_from_keywords_as_from_args(tiny_model_path, tmp_path):
    from compat import explain

    scenario = SCENARIOS[4]  # LoRA+GC
    model = load(scenario, tiny_model_path)
    from_args = explain(model, lora_config(), training_args(scenario, str(tmp_path), steps=1, device="cpu"))
    from_keywords = explain(model, lora_config(), gradient_checkpointing=True)

    def essence(plan):
        return [(step.name, step.gate, {k: v for k, v in step.params.items() if k != "seed"}) for step in plan]

    assert essence(from_args) == essence(from_keywords)
    # Only args carry a seed (TrainingArguments.seed): the adapter initialisation is seeded from it
    assert from_args["get_peft_model"].params["seed"] == 0 and "args.seed" in from_args["get_peft_model"].reason
    assert "seed" not in from_keywords["get_peft_model"].params
    # transformers 4.x's Trainer re-enables checkpointing from args in train(): the step says its kwargs are kept
    for plan in (from_args, from_keywords):
        assert "later enable calls" in plan["checkpointing"].reason
        assert "release_checkpointing_kwargs" in plan["checkpointing"].reason


def test_input_grads_reason_follows_the_gate(tiny_model_path):
    from compat import explain

    planned = explain(load(SCENARIOS[4], tiny_model_path), lora_config(), gradient_checkpointing=True)
    step = planned["input_require_grads"]
    assert step.gate == "input_grads_builtin"
    assert ("#42489" in step.reason) != versions.is_new("input_grads_builtin")


def test_args_like_objects_are_read_not_written(tiny_model_path):
    """Any object with TrainingArguments' attribute names works (TRL configs, namespaces) and is left as it was."""
    from compat import explain

    args = SimpleNamespace(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True})
    plan = explain(load(SCENARIOS[4], tiny_model_path), lora_config(), args)
    assert "checkpointing" in plan
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": True}
    assert vars(args) == {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True}}
