"""The deprecated wrappers: old TRL signatures, a FutureWarning naming the replacement (the Python way: every call
warns, the default filters show it once per call site, pointing at the caller's line), a model that trains."""

from __future__ import annotations

import inspect
import math
import os
import subprocess
import sys
import textwrap
import warnings
from importlib import resources
from pathlib import Path

import pytest
from conftest import assert_trained, snapshot

from compat.scenarios import SCENARIOS, dataset, load, lora_config, skip_reason, train_loop, training_args

pytest.importorskip("peft")
LORA_GC = next(s for s in SCENARIOS if s.name == "LoRA+GC")
QLORA_GC = next(s for s in SCENARIOS if s.name == "Q-LoRA+GC")


def future_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FutureWarning)]


def call_twice(func, *args):
    """Both calls warn: no private once-set (pytest.warns and -W error see every call)."""
    with pytest.warns(FutureWarning) as first_record:
        first = func(*args)
    with pytest.warns(FutureWarning) as second_record:
        func(*args)
    return first, future_warnings(first_record), future_warnings(second_record)


def test_prepare_peft_model_is_a_drop_in(tiny_model_path, tmp_path):
    from peft import PeftModel
    from transformers import Trainer

    from compat import prepare_peft_model  # was: from trl.models import prepare_peft_model

    args = training_args(LORA_GC, str(tmp_path), steps=3, device="cpu")
    for _ in range(2):  # every call warns
        with pytest.warns(FutureWarning, match=r"compat\.prepare_model") as record:
            model = prepare_peft_model(load(LORA_GC, tiny_model_path), lora_config(), args)
        assert len(future_warnings(record)) == 1
        assert record[0].filename == __file__  # the caller's line, not ours
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
    merged = [w for w in record if w.category is UserWarning and "merged" in str(w.message)]
    assert len(merged) == 1 and "save" in str(merged[0].message).lower()
    assert merged[0].filename == __file__  # the caller's line
    assert isinstance(model, PeftModel)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q_proj.lora_A["default"].weight.shape[0] == 8  # the new adapter only
    torch.testing.assert_close(q_proj.base_layer.weight, expected_q.to(q_proj.base_layer.weight.dtype))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 3_584


def test_enable_gradient_checkpointing_wrapper(tiny_model_path, layer_calls):
    from peft import get_peft_model

    from compat import enable_gradient_checkpointing

    model = get_peft_model(load(LORA_GC, tiny_model_path), lora_config())
    _, first, second = call_twice(enable_gradient_checkpointing, model, {"use_reentrant": False})
    assert first == second and len(first) == 1 and "compat.enable_checkpointing" in first[0]
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
    with pytest.warns(FutureWarning, match=r"compat\.prepare_model") as record:
        model = prepare_model_for_kbit_training(model)
    assert len(future_warnings(record)) == 1 and record[0].filename == __file__
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
    returned, first, second = call_twice(peft_module_casting_to_bf16, model)
    assert returned is model  # TRL's returned None
    assert first == second and len(first) == 1 and "compat.cast_trainable_params" in first[0]
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}
    assert {n: p.dtype for n, p in model.named_parameters() if "norm" in n} == norms  # no fp32 norm upcast
    before = snapshot(model)
    train_loop(model)
    assert_trained(model, before)


WRAPPERS = (
    "prepare_peft_model",
    "enable_gradient_checkpointing",
    "prepare_model_for_kbit_training",
    "peft_module_casting_to_bf16",
)


def test_wrappers_are_marked_deprecated_for_type_checkers():
    """PEP 702: `@deprecated` sets __deprecated__; py.typed ships with the package, so type checkers read it."""
    import compat

    for name in WRAPPERS:
        assert "compat." in getattr(compat, name).__deprecated__, name
    assert resources.files("compat").joinpath("py.typed").is_file()


def test_default_filters_show_each_call_site_once_at_the_callers_line(tmp_path):
    """A fresh interpreter with Python's default warning filters: three calls from one line warn once, a call from
    another line warns again, each attributed to the script's own line; under -W error the first call raises."""
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent("""
        import torch
        import compat
        model = torch.nn.Linear(2, 2)
        for _ in range(3):
            compat.peft_module_casting_to_bf16(model)  # line 6
        compat.peft_module_casting_to_bf16(model)  # line 7
        print("done")
    """)
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTHONWARNINGS", None)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if "FutureWarning" in line]
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith(f"{script}:6:") and lines[1].startswith(f"{script}:7:"), lines
    strict = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert strict.returncode == 1 and "FutureWarning: peft_module_casting_to_bf16 is deprecated" in strict.stderr
    assert "done" not in strict.stdout


def test_a_warning_from_deep_inside_points_at_the_caller(tiny_model_path, tmp_path):
    """The ZeRO-3 warning is raised while planning, several calls down (wrapper -> prepare_model -> plan -> step):
    still attributed to the line that called the wrapper."""
    from types import SimpleNamespace

    from compat import prepare_peft_model

    args = SimpleNamespace(
        deepspeed_plugin=SimpleNamespace(zero_stage=3),
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=False,
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        prepare_peft_model(load(LORA_GC, tiny_model_path), lora_config(), args)
    ours = [w for w in record if "use_reentrant" in str(w.message) or "deprecated" in str(w.message)]
    assert len(ours) == 2, [str(w.message) for w in record]
    assert {(w.filename, w.lineno) for w in ours} == {(__file__, line)}
