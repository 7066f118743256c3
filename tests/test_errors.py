"""Bad input gets a clear error that says what to do, before the model is touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import snapshot

from compat.scenarios import SCENARIOS, load, lora_config

pytest.importorskip("peft")
LORA = next(s for s in SCENARIOS if s.name == "LoRA")


def untouched(model, before, grads_before) -> bool:
    import torch

    return (
        type(model).__name__ != "PeftModel"
        and all(torch.equal(p, before[n]) for n, p in model.named_parameters())
        and {n: p.requires_grad for n, p in model.named_parameters()} == grads_before
        and not any("lora" in n for n, _ in model.named_modules())
    )


@pytest.mark.parametrize("bad", [{"r": 8, "lora_alpha": 16}, "lora", 8])
def test_not_a_peft_config_is_a_type_error(bad, tiny_model_path):
    from compat import explain, prepare_model

    model = load(LORA, tiny_model_path)
    before, grads = snapshot(model), {n: p.requires_grad for n, p in model.named_parameters()}
    with pytest.raises(TypeError, match=rf"peft\.PeftConfig.*got {type(bad).__name__}"):
        prepare_model(model, bad, gradient_checkpointing=True)
    with pytest.raises(TypeError):
        explain(model, bad)
    assert untouched(model, before, grads)


def test_dict_config_error_says_how_to_build_one(tiny_model_path):
    from compat import prepare_model

    with pytest.raises(TypeError, match=r"LoraConfig\(\*\*your_dict\)"):
        prepare_model(load(LORA, tiny_model_path), {"r": 8})


def test_peft_model_with_a_new_config_says_merge_save_reload(tiny_model_path):
    from peft import get_peft_model

    from compat import prepare_model

    model = get_peft_model(load(LORA, tiny_model_path), lora_config())
    with pytest.raises(ValueError, match=r"merge_and_unload\(\).*save_pretrained"):
        prepare_model(model, lora_config())
    # without a new config, an existing PeftModel is simply prepared (e.g. to resume training it)
    assert prepare_model(model, None, gradient_checkpointing=True) is model


def test_a_model_name_instead_of_a_model(tiny_model_path):
    from compat import prepare_model

    with pytest.raises(TypeError, match=r"loaded model.*from_pretrained"):
        prepare_model(tiny_model_path)


def test_bad_checkpointing_kwargs(tiny_model_path):
    from compat import prepare_model

    with pytest.raises(TypeError, match="use_reentrant"):
        prepare_model(load(LORA, tiny_model_path), gradient_checkpointing=True, gradient_checkpointing_kwargs=["x"])


def run_without(packages: tuple[str, ...], script: str, tmp_path) -> subprocess.CompletedProcess:
    """Run `script` where `packages` are really not installed: a copy of site-packages (as links) without them, and no
    site processing, so neither importlib.metadata nor import finds them."""
    import os
    from pathlib import Path

    site = Path(pytest.importorskip("packaging").__file__).resolve().parents[1]
    farm = tmp_path / "site-packages"
    farm.mkdir()
    for entry in site.iterdir():
        if entry.name.lower().split("-")[0].split(".")[0] not in packages:
            (farm / entry.name).symlink_to(entry)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(farm)])}
    return subprocess.run(
        [sys.executable, "-S", "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300, env=env
    )


def test_peft_missing_names_the_pip_command(tmp_path):
    """transformers itself then sees no peft. Expect an ImportError with the pip command."""
    out = run_without(
        ("peft",),
        """
        import importlib.util
        assert importlib.util.find_spec("peft") is None, "peft is still importable"
        import transformers
        from compat.scenarios import model_config
        model = transformers.AutoModelForCausalLM.from_config(model_config())
        import compat
        try:
            compat.prepare_model(model, object())
        except ImportError as exc:
            print("IMPORT-ERROR:", exc)
        """,
        tmp_path,
    )
    assert "IMPORT-ERROR:" in out.stdout, out.stderr[-2000:]
    assert "pip install peft" in out.stdout


def test_pretrained_kwargs_without_torch_names_the_pip_command(tmp_path):
    out = run_without(
        ("torch", "transformers"),
        """
        import importlib.util
        assert importlib.util.find_spec("torch") is None, "torch is still importable"
        import compat
        for args in (("auto",), ("bfloat16",), ("bfloat16", True)):
            try:
                compat.pretrained_kwargs(args[0], load_in_4bit=len(args) > 1)
            except ImportError as exc:
                print("IMPORT-ERROR:", exc)
        """,
        tmp_path,
    )
    errors = [line for line in out.stdout.splitlines() if line.startswith("IMPORT-ERROR:")]
    assert len(errors) == 3, out.stdout + out.stderr[-2000:]
    assert all("pip install torch transformers" in line for line in errors)
