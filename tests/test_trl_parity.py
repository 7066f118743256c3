"""compat.prepare_model + transformers.Trainer against TRL's own SFTTrainer, field by field: TRL is the oracle.

Each scenario loads the same tiny checkpoint twice, trains 3 steps on the same token ids, once prepared by compat and
trained by transformers' Trainer, once prepared and trained by TRL's SFTTrainer (which prepares the model itself in
its __init__), and compares: the trainable parameters (names, counts, dtypes), the frozen parameters' dtypes by role,
checkpointing on, what torch's checkpoint received during training (use_reentrant, a selective context_fn), the
input-grad hook, the caller's args left unchanged, the adapters' initial weights (both seeded from args.seed), the
gradients of every step and the weights after the last. When a new TRL changes its preparation, this test says so.

Needs trl: the tox envs trl-latest and trl-t457-p017 install it (the rest of the suite skips this module).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

trl = pytest.importorskip("trl", reason="trl is not installed: the tox envs trl-latest and trl-t457-p017 run this")
torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")

from conftest import CheckpointCalls  # noqa: E402

from compat import versions  # noqa: E402
from compat.scenarios import Scenario, lora_config, training_args  # noqa: E402

STEPS = 3
# Relative (Frobenius) error of each gradient and final weight tensor against TRL's. The first step starts from the
# same weights: what is left is TRL's own loss computation (a fused, chunked LM head) seen through bf16 activations
# (measured: <= 3.4e-3, bf16's resolution is 3.9e-3). Later steps compound that through the weight updates (measured:
# <= 0.10 in the trl-* tox envs). A different preparation (another adapter init, a parameter frozen or trainable, in
# another dtype, a missing input-grad hook) fails the exact checks before these, or shows as errors of order 1; a
# gradient scaled by 2 (say, a loss normalised differently) as 0.5 or more.
FIRST_STEP, TOLERANCE = 1e-2, 0.25
ROWS, LENGTH, VOCAB = 12, 48, 1000


@dataclass(frozen=True)
class Case:
    name: str
    quant: str | None = None  # "4bit", "8bit"
    adapter: str | None = None  # "lora", "dora"
    gc: bool = False
    bf16: bool = False  # TrainingArguments(bf16=True): autocast
    existing: bool = False  # the model is already a PeftModel (no new config)
    kwargs: dict[str, Any] = field(default_factory=dict)  # gradient_checkpointing_kwargs

    @property
    def id(self) -> str:
        return self.name


CASES = [
    Case("FFT"),
    Case("FFT+GC", gc=True),
    Case("LoRA", adapter="lora"),
    Case("LoRA+GC", adapter="lora", gc=True),
    Case("LoRA+GC+bf16", adapter="lora", gc=True, bf16=True),
    Case("FFT+GC+selective", gc=True, kwargs={"selective": True}),
    Case("LoRA+GC+selective", adapter="lora", gc=True, kwargs={"selective": True}),
    Case("Q-LoRA", quant="4bit", adapter="lora"),
    Case("Q-LoRA+GC", quant="4bit", adapter="lora", gc=True),
    Case("Q-LoRA+GC+bf16", quant="4bit", adapter="lora", gc=True, bf16=True),
    Case("8bit-LoRA", quant="8bit", adapter="lora"),
    Case("8bit-LoRA+GC", quant="8bit", adapter="lora", gc=True),
    Case("Q-DoRA", quant="4bit", adapter="dora"),
    Case("Q-DoRA+GC", quant="4bit", adapter="dora", gc=True),
    Case("PeftModel", adapter="lora", existing=True),
    Case("PeftModel+GC", adapter="lora", existing=True, gc=True),
]


def rows() -> list[dict[str, list[int]]]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (ROWS, LENGTH), generator=generator).tolist()
    return [{"input_ids": row, "attention_mask": [1] * LENGTH, "labels": list(row)} for row in ids]


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer over the tiny model's 1,000 ids, built locally (no hub): SFTTrainer needs one."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="t2")), pad_token="t0", eos_token="t1", unk_token="t2"
    )


def load(case: Case, path: str):
    from transformers import AutoModelForCausalLM

    from compat import pretrained_kwargs

    if case.quant:
        kwargs = (
            pretrained_kwargs(
                "auto",
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype="bfloat16",
            )
            if case.quant == "4bit"
            else pretrained_kwargs("auto", load_in_8bit=True)
        )
        model = AutoModelForCausalLM.from_pretrained(path, device_map={"": "cpu"}, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **pretrained_kwargs("auto"))
    if case.existing:  # an adapter made earlier (its own seed), trained further without a new config
        from peft import get_peft_model

        torch.manual_seed(123)
        model = get_peft_model(model, lora_config())
    return model


def peft_config(case: Case):
    if not case.adapter or case.existing:
        return None
    return lora_config(use_dora=True) if case.adapter == "dora" else lora_config()


def make_args(case: Case, out: str):
    kwargs = dict(per_device_train_batch_size=4, bf16=case.bf16, seed=42, save_strategy="no")
    if case.kwargs:
        kwargs[
            "activation_checkpointing_kwargs"
            if versions.is_new("activation_checkpointing_names")
            else "gradient_checkpointing_kwargs"
        ] = dict(case.kwargs)
    return training_args(Scenario(case.name, gc=case.gc), out, STEPS, "cpu", **kwargs)


def arg_fields(args) -> dict:
    return copy.deepcopy({f.name: getattr(args, f.name) for f in dataclasses.fields(args)})


def role(name: str) -> str:
    if "lora_" in name:
        return "adapter"
    for part in ("embed_tokens", "lm_head", "norm"):
        if part in name:
            return part
    return "linear"


class Grads:
    """A callback: every step's gradients, just before the optimizer uses them."""

    def __init__(self):
        from transformers import TrainerCallback

        grads = self.steps = []

        class Callback(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, **kwargs):
                grads.append(
                    {
                        n: p.grad.detach().float().clone()
                        for n, p in kwargs["model"].named_parameters()
                        if p.requires_grad and p.grad is not None
                    }
                )

        self.callback = Callback()


@dataclass
class Observed:
    trainable: dict = field(default_factory=dict)  # name -> (numel, dtype)
    frozen: dict = field(default_factory=dict)  # (role, dtype) -> numel
    initial: dict = field(default_factory=dict)  # name -> tensor
    final: dict = field(default_factory=dict)
    grads: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    checkpointing: bool = False
    use_reentrant: set = field(default_factory=set)
    context_fn: bool = False
    keys_reaching_torch: set = field(default_factory=set)
    input_grad_hook: bool = False
    args_unchanged: bool = False


def describe_params(model, observed: Observed) -> None:
    frozen = collections.Counter()
    for name, param in model.named_parameters():
        if param.requires_grad:
            observed.trainable[name] = (param.numel(), param.dtype)
            observed.initial[name] = param.detach().clone()
        else:
            frozen[(role(name), param.dtype)] += param.numel()
    observed.frozen = dict(frozen)


def finish(trainer, grads: Grads, calls: CheckpointCalls, observed: Observed) -> Observed:
    from compat.scenarios import checkpointing_on

    model = trainer.model
    describe_params(model, observed)
    trainer.add_callback(grads.callback)
    trainer.train()
    observed.final = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    observed.grads = grads.steps
    observed.losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    observed.checkpointing = checkpointing_on(model)
    observed.use_reentrant = calls.use_reentrant()
    observed.context_fn = any("context_fn" in call for call in calls.calls)
    observed.keys_reaching_torch = calls.keys()
    embeddings = model.get_input_embeddings()
    observed.input_grad_hook = bool(embeddings._forward_hooks) or embeddings.weight.requires_grad
    return observed


def run_compat(case: Case, path: str, out: str, monkeypatch) -> Observed:
    from transformers import PrinterCallback, Trainer

    import compat

    calls = CheckpointCalls().install(monkeypatch)
    model, args = load(case, path), make_args(case, out)
    args_before = arg_fields(args)
    model = compat.prepare_model(model, peft_config(case), args)
    # the preparation's doing only: transformers 4.x's Trainer itself sets args.half_precision_backend later
    observed = Observed(args_unchanged=arg_fields(args) == args_before)
    trainer = Trainer(model=model, args=args, train_dataset=rows())
    trainer.remove_callback(PrinterCallback)
    return finish(trainer, Grads(), calls, observed)


def run_trl(case: Case, path: str, out: str, monkeypatch, tokenizer) -> Observed:
    from transformers import PrinterCallback

    calls = CheckpointCalls().install(monkeypatch)
    model, args = load(case, path), make_args(case, out)
    args_before = arg_fields(args)
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows()),
        processing_class=tokenizer,
        peft_config=peft_config(case),
    )
    observed = Observed(args_unchanged=arg_fields(args) == args_before)  # TRL prepares a copy of a TrainingArguments
    trainer.remove_callback(PrinterCallback)
    return finish(trainer, Grads(), calls, observed)


def relative_error(ours: dict, theirs: dict, what: str) -> float:
    """The largest ||ours - theirs|| / ||theirs|| over the tensors (0 where both are zero)."""
    assert ours.keys() == theirs.keys(), f"{what}: different parameters"
    worst = 0.0
    for name, tensor in theirs.items():
        diff = (ours[name].float() - tensor.float()).norm().item()
        scale = tensor.float().norm().item()
        worst = max(worst, diff / scale if scale else diff)
    return worst


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compat_and_trainer_prepare_and_train_like_sft_trainer(
    case, tiny_model_path, tokenizer, tmp_path, monkeypatch, record_property
):
    if case.quant and not versions.is_new("bnb_cpu_kbit"):
        need = versions.GATES_BY_NAME["bnb_cpu_kbit"].requirement
        pytest.skip(f"gate bnb_cpu_kbit: {case.quant} on the CPU needs {need}")
    oracle = case
    if case.kwargs.get("selective") and case.adapter and versions.is_new("activation_checkpointing_names"):
        # TRL 1.16 wraps the PeftModel's gradient_checkpointing_enable, but transformers >= 5.23's Trainer calls
        # activation_checkpointing_enable, which the PeftModel forwards to the base model: the wrapper is bypassed
        # and `selective` reaches torch. Selective checkpointing changes no gradient, so TRL's full checkpointing
        # is the oracle there. When TRL fixes this, the first assertion fails: compare with selective again.
        with pytest.raises(ValueError, match="Unexpected keyword arguments: selective"):
            run_trl(case, tiny_model_path, str(tmp_path / "trl-selective"), monkeypatch, tokenizer)
        monkeypatch.undo()
        oracle = dataclasses.replace(case, kwargs={})
    theirs = run_trl(oracle, tiny_model_path, str(tmp_path / "trl"), monkeypatch, tokenizer)
    monkeypatch.undo()
    ours = run_compat(case, tiny_model_path, str(tmp_path / "compat"), monkeypatch)

    # What the preparation decided.
    assert ours.trainable == theirs.trainable, "trainable parameters (names, counts, dtypes)"
    assert ours.frozen == theirs.frozen, "frozen parameters' dtypes by role"
    assert ours.checkpointing == theirs.checkpointing == case.gc
    assert ours.use_reentrant == theirs.use_reentrant, "use_reentrant that torch's checkpoint received in training"
    assert ours.context_fn == bool(case.kwargs.get("selective"))
    assert theirs.context_fn == bool(oracle.kwargs.get("selective"))
    assert "selective" not in ours.keys_reaching_torch | theirs.keys_reaching_torch
    assert ours.input_grad_hook == theirs.input_grad_hook
    assert ours.args_unchanged, "compat changed the caller's TrainingArguments"
    # Where both start: the same adapter (seeded from args.seed on both sides), the same full weights.
    for name, tensor in theirs.initial.items():
        assert torch.equal(ours.initial[name], tensor), f"initial weights differ: {name}"
    # Training: the same gradients at every step, the same weights after. TRL computes the loss with its own fused
    # LM head (chunked log-softmax), so equal up to float rounding, not bit for bit.
    assert len(ours.grads) == len(theirs.grads) == STEPS
    assert all(step.keys() == ours.trainable.keys() for step in ours.grads), "a trainable parameter got no gradient"
    errors = [
        relative_error(mine, oracle, f"gradients of step {step}")
        for step, (mine, oracle) in enumerate(zip(ours.grads, theirs.grads), 1)
    ]
    errors.append(relative_error(ours.final, theirs.final, "weights after training"))
    assert errors[0] <= FIRST_STEP, f"step 1 (same weights, same batch): relative error {errors[0]}"
    assert max(errors) <= TOLERANCE, f"gradients per step, then final weights: relative errors {errors}"
    assert all(math.isfinite(x) for x in ours.losses) and len(ours.losses) == STEPS
    for mine, oracle in zip(ours.losses, theirs.losses):
        assert math.isclose(mine, oracle, rel_tol=1e-3), (ours.losses, theirs.losses)
    trainable = sum(n for n, _ in ours.trainable.values())
    dtypes = sorted({str(d).removeprefix("torch.") for _, d in ours.trainable.values()})
    record_property(
        "parity",
        f"{case.name}: trainable {trainable:,} {dtypes}, gc {ours.checkpointing}, "
        f"use_reentrant {sorted(map(str, ours.use_reentrant))}, selective {ours.context_fn} "
        f"(TRL {theirs.context_fn}), hook {ours.input_grad_hook}, TRL changed args "
        f"{not theirs.args_unchanged}, losses {[round(x, 4) for x in ours.losses]}, relative "
        f"errors (step grads, final weights) {[float(f'{e:.1e}') for e in errors]}",
    )


def test_a_peft_model_with_a_new_config_is_refused_by_both(tiny_model_path, tokenizer, tmp_path):
    import compat

    case = Case("PeftModel+config", adapter="lora", existing=True)
    args = make_args(case, str(tmp_path))
    with pytest.raises(ValueError, match="merge") as trl_error:
        trl.SFTTrainer(
            model=load(case, tiny_model_path),
            args=args,
            processing_class=tokenizer,
            train_dataset=datasets.Dataset.from_list(rows()),
            peft_config=lora_config(),
        )
    with pytest.raises(ValueError, match="[Mm]erge") as compat_error:
        compat.prepare_model(load(case, tiny_model_path), lora_config(), args)
    assert "save" in str(trl_error.value) and "save" in str(compat_error.value)


def test_trl_writes_into_its_config_where_compat_only_reads(tiny_model_path, tokenizer, tmp_path):
    """The one difference on purpose: on transformers 4.x TRL gets non-reentrant checkpointing by writing
    gradient_checkpointing_kwargs into the SFTConfig it is given; compat leaves the same config as it was."""
    import compat

    def config():
        return trl.SFTConfig(
            str(tmp_path), gradient_checkpointing=True, max_steps=1, report_to=[], use_cpu=True, save_strategy="no"
        )

    theirs = config()
    trl.SFTTrainer(
        model=load(Case("LoRA", adapter="lora"), tiny_model_path),
        args=theirs,
        processing_class=tokenizer,
        train_dataset=datasets.Dataset.from_list(rows()),
        peft_config=lora_config(),
    )
    written = theirs.gradient_checkpointing_kwargs
    assert (written == {"use_reentrant": False}) != versions.is_new("non_reentrant_default"), written
    ours = config()
    before = arg_fields(ours)
    compat.prepare_model(load(Case("LoRA", adapter="lora"), tiny_model_path), lora_config(), ours)
    assert arg_fields(ours) == before
