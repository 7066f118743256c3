"""pretrained_kwargs(): the from_pretrained keywords that are right for the installed transformers, really loaded."""

from __future__ import annotations

import logging

import pytest

from compat import versions

pytest.importorskip("transformers")


def load(path, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


@pytest.mark.parametrize(
    "dtype,expected",
    [("auto", "bfloat16"), ("float16", "float16"), ("float32", "float32"), ("torch.float16", "float16")],
)
def test_dtype_is_explicit_and_honoured(dtype, expected, tiny_model_path, caplog):
    import torch

    from compat import pretrained_kwargs

    kwargs = pretrained_kwargs(dtype)
    assert list(kwargs) == ["dtype" if versions.is_new("dtype_kwarg") else "torch_dtype"]
    with caplog.at_level(logging.WARNING):
        model = load(tiny_model_path, **kwargs)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, expected)}
    assert "torch_dtype" not in caplog.text  # no deprecation message about our own keyword


def test_4bit_config_replaces_the_removed_flag(tiny_model_path):
    if not versions.is_new("bnb_cpu_kbit"):
        pytest.skip(f"gate bnb_cpu_kbit: needs {versions.GATES_BY_NAME['bnb_cpu_kbit'].requirement}")
    import torch

    from compat import pretrained_kwargs

    kwargs = pretrained_kwargs(
        "bfloat16",
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype="float16",
    )
    assert "load_in_4bit" not in kwargs
    config = kwargs["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.float16
    model = load(tiny_model_path, device_map={"": "cpu"}, **kwargs)
    assert model.is_loaded_in_4bit


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"dtype": "half-ish"}, ValueError, "must be a torch dtype"),
        ({"load_in_4bit": True, "load_in_8bit": True}, ValueError, "not both"),
        ({"bnb_4bit_quant_type": "nf4"}, ValueError, "only apply with load_in_4bit"),
    ],
)
def test_bad_loading_options(kwargs, error, message):
    from compat import pretrained_kwargs

    with pytest.raises(error, match=message):
        pretrained_kwargs(**kwargs)


def test_unknown_bnb_option_lists_the_accepted_ones():
    if versions.installed("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    from compat import pretrained_kwargs

    with pytest.raises(TypeError, match=r"bnb_4bit_quant_tpye.*accepted: .*bnb_4bit_quant_type"):
        pretrained_kwargs("bfloat16", load_in_4bit=True, bnb_4bit_quant_tpye="nf4")
