"""GPU checks (marker `gpu`): the seven scenarios on CUDA, Q-LoRA with fp16 and bf16 compute, 8-bit LoRA, and peak CUDA
memory of Q-LoRA prepared by compat vs the old recipe (peft's prepare_model_for_kbit_training + get_peft_model).

Skipped without a CUDA device, with that reason. scripts/gpu-check.sh runs them (plus `python -m compat.scenarios
--device cuda`) on a lent GPU machine and prints a table.
"""

from __future__ import annotations

import math
import os
import time

import pytest

from compat import versions
from compat.scenarios import build_tiny_model, lora_config, train_loop

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs a CUDA device (none here)")]

LORA_TRAINABLE = 3_584


def need_bnb():
    if versions.installed("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed (carry it as a wheel: scripts/gpu-check.sh --fetch)")


def need_peft():
    pytest.importorskip("peft", reason="peft is not installed")


def train(model, steps: int = 3, **kwargs):
    # fp16 weights: Adam's default eps (1e-8) underflows to 0 in fp16
    return train_loop(model, steps, eps=1e-4, **kwargs)


# --- the seven scenarios ------------------------------------------------------------------------------------------

EXPECTED = {
    # name: (gc, peft, quant, adapter dtype or None)
    "FFT": (False, False, "-", None),
    "FFT+FP16": (False, False, "-", None),
    "FFT+GC": (True, False, "-", None),
    "LoRA": (False, True, "-", None),
    "LoRA+GC": (True, True, "-", None),
    "Q-LoRA": (False, True, "4bit", "bfloat16"),
    "Q-LoRA+GC": (True, True, "4bit", "bfloat16"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_scenario_on_cuda(name, tiny_model_path, tmp_path):
    from compat.scenarios import SCENARIOS, run_scenario

    scenario = next(s for s in SCENARIOS if s.name == name)
    if scenario.lora:
        need_peft()
    if scenario.qlora:
        need_bnb()
    result = run_scenario(scenario, tiny_model_path, steps=3, device="cuda", workdir=str(tmp_path))
    assert result.status == "ok", result.reason
    gc, peft, quant, adapter = EXPECTED[name]
    observed = result.observed
    assert observed["gc"] is gc
    assert observed["peft"] is peft
    assert observed["quant"] == quant
    if peft:
        assert observed["trainable"] == LORA_TRAINABLE
    else:
        assert observed["trainable"] == observed["total"]
        assert observed["dtype"] == ("float16" if name == "FFT+FP16" else "bfloat16")
    if adapter:
        assert observed["adapter_dtype"] == adapter
    assert result.losses and all(math.isfinite(x) for x in result.losses)
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 0


# --- Q-LoRA compute dtypes, 8-bit ---------------------------------------------------------------------------------


def load_quantized(path, **quant):
    from transformers import AutoModelForCausalLM

    from compat import pretrained_kwargs

    return AutoModelForCausalLM.from_pretrained(path, device_map={"": 0}, **pretrained_kwargs("auto", **quant))


@pytest.mark.parametrize("compute", ["float16", "bfloat16"])
@pytest.mark.parametrize("gc", [False, True], ids=["no-gc", "gc"])
def test_qlora_compute_dtype(tiny_model_path, compute, gc):
    need_peft()
    need_bnb()
    from compat import prepare_model

    model = load_quantized(
        tiny_model_path,
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    assert model.is_loaded_in_4bit
    model = prepare_model(model, lora_config(), gradient_checkpointing=gc)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in trainable.values()) == LORA_TRAINABLE
    assert {p.dtype for p in trainable.values()} == {torch.bfloat16}
    assert all(p.is_cuda for p in trainable.values())
    before = {n: p.detach().clone() for n, p in trainable.items()}
    losses = train(model)
    assert all(math.isfinite(x) for x in losses)
    assert all(not torch.equal(p, before[n]) for n, p in trainable.items()), "an adapter tensor did not train"


def test_8bit_lora(tiny_model_path):
    need_peft()
    need_bnb()
    from compat import prepare_model

    model = load_quantized(tiny_model_path, load_in_8bit=True)
    assert model.is_loaded_in_8bit
    model = prepare_model(model, lora_config(), gradient_checkpointing=True)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in trainable.values()) == LORA_TRAINABLE
    before = {n: p.detach().clone() for n, p in trainable.items()}
    assert all(math.isfinite(x) for x in train(model))
    assert all(not torch.equal(p, before[n]) for n, p in trainable.items())


# --- peak memory: compat vs the old recipe -------------------------------------------------------------------------

MID = dict(
    vocab_size=32_000,
    hidden_size=512,
    intermediate_size=1408,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    tie_word_embeddings=False,
)  # ~40M parameters, bf16 on disk


@pytest.fixture(scope="module")
def mid_model_path(tmp_path_factory):
    return build_tiny_model(str(tmp_path_factory.mktemp("mid") / "qwen3-40m"), **MID)


def _peak_qlora(path, recipe: str, gc: bool) -> tuple[float, float, set]:
    """Peak CUDA memory (MiB above what was allocated before loading) and seconds/step."""
    import gc as pygc

    from peft import get_peft_model, prepare_model_for_kbit_training

    from compat import prepare_model

    pygc.collect()
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model = load_quantized(
        path,
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype="bfloat16",
    )
    if recipe == "compat":
        model = prepare_model(model, lora_config(), gradient_checkpointing=gc)
    else:  # what TRL < 0.25 and most tutorials did
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gc, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        model = get_peft_model(model, lora_config())
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        train(model, steps=1, batch=4, length=256)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        train(model, steps=3, batch=4, length=256)
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / 3
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    del model
    pygc.collect()
    torch.cuda.empty_cache()
    return peak, elapsed, dtypes


@pytest.mark.parametrize("gc", [False, True], ids=["Q-LoRA", "Q-LoRA+GC"])
def test_qlora_peak_memory_vs_the_old_recipe(mid_model_path, gc, record_property):
    need_peft()
    need_bnb()
    old_peak, old_step, old_dtypes = _peak_qlora(mid_model_path, "peft-kbit", gc)
    new_peak, new_step, new_dtypes = _peak_qlora(mid_model_path, "compat", gc)
    line = (
        f"{'Q-LoRA+GC' if gc else 'Q-LoRA'}: compat {new_peak:.0f} MiB {new_step * 1e3:.1f} ms/step "
        f"(adapters {','.join(sorted(new_dtypes))}); peft prepare_model_for_kbit_training {old_peak:.0f} MiB "
        f"{old_step * 1e3:.1f} ms/step (adapters {','.join(sorted(old_dtypes))})"
    )
    print(line)
    record_property("memory", line)
    out = os.environ.get("GPU_CHECK_OUT")
    if out:
        with open(os.path.join(out, "memory.txt"), "a", encoding="utf-8") as f:
            f.write(line + "\n")
    assert new_dtypes == {"bfloat16"}
    # The old recipe upcasts every non-quantized parameter (embeddings, lm_head, norms) to fp32.
    assert new_peak < old_peak, line
