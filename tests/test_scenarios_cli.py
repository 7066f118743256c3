"""`python -m compat.scenarios`, the main job, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from compat import versions

pytest.importorskip("transformers")


def run(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compat.scenarios", *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["prepare_model", "legacy"])
def test_json_output(legacy):
    argv = ["--format", "json", "--steps", "2", "--only", "FFT+GC", "--only", "LoRA+GC", "--only", "Q-LoRA"]
    out = run(*argv, *(["--legacy"] if legacy else []))
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["device"] == "cpu" and report["legacy"] is legacy
    assert report["versions"]["transformers"] == str(versions.installed("transformers"))
    results = {r["scenario"]: r for r in report["results"]}
    assert list(results) == ["FFT+GC", "LoRA+GC", "Q-LoRA"]
    fft, lora = results["FFT+GC"], results["LoRA+GC"]
    for r in (fft, lora):
        assert r["status"] == "ok" and len(r["losses"]) == 2 and r["seconds_per_step"] > 0
        assert r["observed"]["gc"] is True
    assert fft["observed"]["peft"] is False and fft["observed"]["trainable"] == fft["observed"]["total"]
    assert lora["observed"]["peft"] is True and lora["observed"]["trainable"] == 3_584
    q = results["Q-LoRA"]
    if versions.is_new("bnb_cpu_kbit"):
        assert q["status"] == "ok" and q["observed"]["quant"] == "4bit" and q["observed"]["adapter_dtype"] == "bfloat16"
        assert q["observed"]["gc"] is False
    else:
        assert q["status"] == "skipped" and "bitsandbytes" in q["reason"]
    assert "[3/3]" in out.stderr  # progress


def test_markdown_table_has_every_scenario():
    out = run("--steps", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("FFT", "FFT+FP16", "FFT+GC", "LoRA", "LoRA+GC", "Q-LoRA", "Q-LoRA+GC"):
        assert f"| {name} " in out.stdout
    assert "| Scenario" in out.stdout and "Trainable" in out.stdout and "Adapter dtype" in out.stdout
    assert "failed" not in out.stdout


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--only", "QLORA"], "unknown scenario QLORA"),
        (["--model", "/nonexistent"], "not a directory"),
        (["--steps", "0"], "at least 1"),
    ],
)
def test_bad_options_are_usage_errors(argv, message):
    out = run(*argv, timeout=120)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
