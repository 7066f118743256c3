"""A real 2-process FSDP run on the CPU (torchrun, gloo) of compat-prepared LoRA models, and the mixed-dtype case the
`uniform_dtype` step exists for: FSDP (FSDP1, flat parameters) refuses to flatten a bf16 base with fp32 adapters, and
trains the same model once compat has prepared it with the FSDP settings.

The ranks run tests/fsdp_train.py. transformers' Trainer cannot do FSDP on the CPU (accelerate has no CPU FSDP: the
Trainer silently uses DDP for `TrainingArguments(fsdp=...)` there on transformers 5.x and fails to start on 4.x,
asserted below, so that this test says so when it changes); the runs wrap with torch's FullyShardedDataParallel
directly, as accelerate does on GPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_distributed import torchrun

import compat  # noqa: F401  first: on transformers 5 + peft 0.16-0.17 it makes `import peft` work (HybridCache)

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "fsdp_train.py"


@pytest.fixture(scope="module")
def fsdp_ranks(tiny_model_path, tmp_path_factory):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    out = tmp_path_factory.mktemp("fsdp")
    torchrun(SCRIPT, tiny_model_path, str(out), cwd=out)
    reports = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    weights = {
        (rank, run["name"]): torch.load(out / f"rank{rank}-{run['name']}.pt", weights_only=True)
        for rank, report in enumerate(reports)
        for run in report["runs"]
        if "error" not in run
    }
    return reports, weights


def runs(reports, name):
    return [next(r for r in report["runs"] if r["name"] == name) for report in reports]


@pytest.mark.slow
def test_two_gloo_ranks_and_no_fsdp_from_the_cpu_trainer(fsdp_ranks):
    reports, _ = fsdp_ranks
    for rank, report in enumerate(reports):
        assert report["rank"] == rank and report["world_size"] == 2 and report["backend"] == "gloo"
        # accelerate's FSDP is for accelerators only: with fsdp= set on the CPU the Trainer uses DDP (transformers
        # 5.x) or fails to start (4.x). When that changes, run this test through the Trainer instead.
        assert report["trainer_fsdp"] is False
        assert report["trainer"].endswith("MULTI_CPU") or "no available devices" in report["trainer"], report["trainer"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fresh", "existing-uniform"])
def test_compat_prepared_models_train_sharded(fsdp_ranks, name):
    reports, weights = fsdp_ranks
    for run in runs(reports, name):
        assert "error" not in run, run
        assert run["dtypes"] == ["bfloat16"], "FSDP needs one dtype: compat's preparation gives it"
        assert run["wrapped"] == "FullyShardedDataParallel"
        assert run["fsdp_units"] == 1 + 2, "the model and each of its 2 decoder layers are FSDP units"
        assert run["local_params"] < 0.6 * run["total_params"], "each rank holds only its shard of the parameters"
        assert len(run["losses"]) == 3 and all(torch.isfinite(torch.tensor(run["losses"])))
    (rank0, rank1) = (weights[(0, name)], weights[(1, name)])
    assert rank0["after"] and set(rank0["after"]) == set(rank1["after"])
    for param, tensor in rank0["after"].items():
        assert torch.equal(tensor, rank1["after"][param]), f"{param} differs between the ranks"
    changed = [p for p in rank0["after"] if not torch.equal(rank0["after"][p], rank0["before"][p])]
    assert len(changed) == len(rank0["after"]), "every adapter tensor trains (lora_A from step 2 on)"


@pytest.mark.slow
def test_the_uniform_dtype_step_is_what_makes_fsdp_work(fsdp_ranks):
    """An existing PeftModel: fp32 adapters on a bf16 base. Without FSDP settings compat plans no cast and FSDP
    refuses the mixed flat parameter; with them the plan ends with uniform_dtype and the model trains (above)."""
    reports, _ = fsdp_ranks
    for mixed, uniform in zip(runs(reports, "existing-mixed"), runs(reports, "existing-uniform")):
        assert "uniform_dtype" not in mixed["plan"] and uniform["plan"][-1] == "uniform_dtype"
        assert mixed["dtypes"] == ["bfloat16", "float32"]
        assert "uniform dtype" in mixed["error"], mixed["error"]
