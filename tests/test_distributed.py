"""A real 2-process data-parallel run on the CPU: torchrun (gloo) x transformers.Trainer x compat.prepare_model.

Each rank (tests/dist_train.py) prepares the tiny model with LoRA and gradient checkpointing read from
TrainingArguments, trains 3 steps under DDP, and saves its adapter weights; the ranks start from different random
adapter initialisations (different seeds), so identical weights at the end prove DDP broadcast and all-reduced them.
About 20 s on 2 cores, so it is in the default run (marker `slow` lets `-m "not slow"` leave it out).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import compat  # noqa: F401  first: on transformers 5 + peft 0.16-0.17 it makes `import peft` work (HybridCache)

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "dist_train.py"
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: Path, *args: str, cwd: Path) -> str:
    """Runs `script` on 2 CPU ranks (gloo) with torchrun, offline; asserts it succeeded and returns the log's tail."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        DIST_TRAIN_TIMEOUT="200",
        CUDA_VISIBLE_DEVICES="",
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1"]
    cmd += ["--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script), *args]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    log = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{log}"
    return log


@pytest.fixture(scope="module")
def two_ranks(tiny_model_path, tmp_path_factory):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    out = tmp_path_factory.mktemp("ddp")
    log = torchrun(SCRIPT, tiny_model_path, str(out), str(STEPS), cwd=out)
    reports, weights = [], []
    for rank in (0, 1):
        assert (out / f"rank{rank}.json").exists(), f"rank {rank} wrote no report:\n{log}"
        reports.append(json.loads((out / f"rank{rank}.json").read_text()))
        weights.append(torch.load(out / f"rank{rank}.pt", weights_only=True))
    return reports, weights


@pytest.mark.slow
def test_both_ranks_ran_ddp_with_gloo(two_ranks):
    reports, _ = two_ranks
    for rank, report in enumerate(reports):
        assert report["rank"] == rank
        assert report["world_size"] == 2 and report["process_group"] == 2
        assert report["backend"] == "gloo"
        assert report["ddp_wrapped"], "the Trainer did not wrap the model in DistributedDataParallel"
        assert report["global_step"] == STEPS
        assert report["finite"] and len(report["losses"]) == STEPS


@pytest.mark.slow
def test_prepared_model_as_asked(two_ranks):
    reports, _ = two_ranks
    for report in reports:
        assert report["gc"], "gradient checkpointing is not on"
        assert report["use_reentrant"] == ["False"], "torch's checkpoint must run non-reentrant under DDP too"
        assert report["trainable"] == 3_584
        assert report["args_unchanged"], "prepare_model changed the TrainingArguments"
        assert report["future_warnings_from_prepare"] == []


@pytest.mark.slow
def test_ranks_finish_with_identical_adapter_weights(two_ranks):
    _, (rank0, rank1) = two_ranks
    assert set(rank0["after"]) == set(rank1["after"])
    assert rank0["after"], "no trainable parameters saved"
    assert all("lora_" in name for name in rank0["after"])
    # Different seeds -> different lora_A initialisations per rank before DDP broadcast rank 0's.
    assert any(not torch.equal(rank0["before"][n], rank1["before"][n]) for n in rank0["before"]), (
        "the ranks started identical: the test would not show that DDP synchronised them"
    )
    for name, tensor in rank0["after"].items():
        assert torch.equal(tensor, rank1["after"][name]), f"{name} differs between the ranks"
        assert not torch.equal(tensor, rank0["before"][name]), f"{name} did not train"
        assert torch.isfinite(tensor.float()).all(), name
