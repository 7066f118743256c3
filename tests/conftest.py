"""Shared fixtures: the embedded tiny model, saved once per session and re-loaded by every test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    from compat.scenarios import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny") / "tiny-qwen3"))


@pytest.fixture(scope="session")
def qwen3_available() -> bool:
    import transformers

    return hasattr(transformers, "Qwen3Config")


class LayerCalls:
    """Counts calls of each decoder layer's attention block: with checkpointing it runs again in the backward pass.

    The hooks sit on a submodule because transformers 5.x checkpoints the layer's `forward` (the layer's own hooks stay
    outside the checkpoint), and they are pre-hooks because non-reentrant recomputation stops early.
    """

    def __init__(self, model):
        self.count = 0
        blocks = [m for n, m in model.named_modules() if n.endswith("self_attn") and ".layers." in n]
        assert blocks, "no attention blocks found"
        self.layers = len(blocks)
        self.handles = [block.register_forward_pre_hook(self._hook) for block in blocks]

    def _hook(self, *_):
        self.count += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.fixture
def layer_calls():
    made = []

    def attach(model):
        made.append(LayerCalls(model))
        return made[-1]

    yield attach
    for calls in made:
        calls.remove()


def snapshot(model) -> dict:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def assert_trained(model, before: dict) -> None:
    """Every trainable tensor changed; every frozen one is bit-identical."""
    import torch

    unchanged, changed_frozen = [], []
    for name, param in model.named_parameters():
        same = torch.equal(param.detach().cpu(), before[name].cpu())
        if param.requires_grad and same:
            unchanged.append(name)
        if not param.requires_grad and not same:
            changed_frozen.append(name)
    assert not unchanged, f"trainable tensors did not change: {unchanged[:5]}"
    assert not changed_frozen, f"frozen tensors changed: {changed_frozen[:5]}"


class CheckpointCalls:
    """What torch's checkpoint receives: transformers binds `functools.partial(checkpoint, **kwargs)` when
    checkpointing is enabled, from the `checkpoint` name in transformers.modeling_utils, so a recorder under that name
    (and torch's) sees every checkpointed call made after it is installed, the Trainer's own re-enable included."""

    def __init__(self):
        self.calls: list[dict] = []

    def install(self, monkeypatch):
        import torch.utils.checkpoint
        import transformers.modeling_utils

        real = torch.utils.checkpoint.checkpoint

        def checkpoint(function, *args, **kwargs):
            self.calls.append(dict(kwargs))
            return real(function, *args, **kwargs)

        monkeypatch.setattr(transformers.modeling_utils, "checkpoint", checkpoint)
        monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", checkpoint)
        return self

    def use_reentrant(self) -> set:
        return {call.get("use_reentrant", "unset") for call in self.calls}

    def keys(self) -> set:
        return {key for call in self.calls for key in call}


@pytest.fixture
def checkpoint_calls(monkeypatch):
    pytest.importorskip("transformers")
    return CheckpointCalls().install(monkeypatch)
