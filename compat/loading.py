"""Keyword arguments for `from_pretrained` that are right for the installed transformers.

- `dtype=` from transformers 4.56, `torch_dtype=` before (gate `dtype_kwarg`);
- always an explicit dtype, because 5.0 changed the default from float32 to "auto" (gate `default_dtype_auto`);
- `quantization_config=BitsAndBytesConfig(...)` instead of `load_in_4bit=`/`load_in_8bit=`, which 5.0 removed
  (gate `load_in_kbit_removed`; the config works on every version we support).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from compat import versions

if TYPE_CHECKING:  # pragma: no cover
    import torch

_DTYPES = ("auto", "float32", "float16", "bfloat16")


def _as_dtype(value: Any, what: str) -> torch.dtype:
    import torch

    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in _DTYPES[1:]:
        return getattr(torch, value.removeprefix("torch."))
    raise ValueError(f"{what} must be a torch dtype or one of {', '.join(_DTYPES[1:])}, got {value!r}")


def dtype_keyword() -> str:
    """'dtype' where from_pretrained takes it (transformers >= 4.56), else 'torch_dtype'."""
    return "dtype" if versions.is_new("dtype_kwarg") else "torch_dtype"


def pretrained_kwargs(
    dtype: torch.dtype | str = "auto", *, load_in_4bit: bool = False, load_in_8bit: bool = False, **bnb_options: Any
) -> dict[str, Any]:
    """`from_pretrained` keyword arguments for this dtype and quantization, right for the installed transformers.

    dtype: "auto" (the checkpoint's dtype, the 5.x default, also on 4.x), a torch dtype or its name.
    load_in_4bit / load_in_8bit: quantize with bitsandbytes; `bnb_options` are BitsAndBytesConfig keywords
    (bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype="float16", ...).

    >>> AutoModelForCausalLM.from_pretrained(path, **pretrained_kwargs("bfloat16", load_in_4bit=True))
    """
    missing = [pkg for pkg in ("torch", "transformers") if versions.installed(pkg) is None]
    if missing:  # the keywords depend on the installed transformers, the dtypes are torch's
        raise ImportError(
            f"compat.pretrained_kwargs needs {' and '.join(missing)}. Install with: pip install {' '.join(missing)}"
        )
    kwargs: dict[str, Any] = {dtype_keyword(): dtype if dtype == "auto" else _as_dtype(dtype, "dtype")}
    if load_in_4bit and load_in_8bit:
        raise ValueError("Choose one of load_in_4bit=True and load_in_8bit=True, not both.")
    if not (load_in_4bit or load_in_8bit):
        if bnb_options:
            raise ValueError(
                f"{', '.join(sorted(bnb_options))} only apply with load_in_4bit=True or load_in_8bit=True."
            )
        return kwargs
    if versions.installed("bitsandbytes") is None:
        raise ImportError("Loading in 4-bit or 8-bit needs bitsandbytes. Install it with: pip install bitsandbytes")

    from transformers import BitsAndBytesConfig

    accepted = set(inspect.signature(BitsAndBytesConfig.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(bnb_options) - accepted)
    if unknown:
        raise TypeError(
            f"Unknown BitsAndBytesConfig option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}"
        )
    options = dict(bnb_options)
    if "bnb_4bit_compute_dtype" in options:
        options["bnb_4bit_compute_dtype"] = _as_dtype(options["bnb_4bit_compute_dtype"], "bnb_4bit_compute_dtype")
    kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit, **options)
    return kwargs
