"""TRL's own example scripts (`trl/commands/scripts/*.py` in the 0.8.6, 0.11.4 and 0.12.2 wheels), run on today's stack.

`CASES` says, per (version, script), which tiny dataset the script reads, which of its CLI flags point it at local
files, how the unmodified script fails today (the first error), and which codemod rules it needs. `run` runs one
script in a subprocess with 2 training steps and returns what happened; `trained` says whether it really trained
(a loss logged at each step, weights changed against the initial model).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

VERSIONS = ("0.8.6", "0.11.4", "0.12.2")
STEPS = 2

# The flags every run gets. `--bf16 False`: today's TRL configs default to bf16=True, which raises on a CPU
# ("Your setup doesn't support bf16/gpu"); TRL <= 0.18's default was False, so the flag keeps the old meaning.
# `--logging_steps 1`: TRL configs log every 10 steps, and a loss at each step is the proof of training.
COMMON_FLAGS = (
    "--max_steps",
    str(STEPS),
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--per_device_train_batch_size",
    "2",
    "--per_device_eval_batch_size",
    "2",
    "--bf16",
    "False",
)


@dataclass(frozen=True)
class Case:
    version: str
    script: str
    dataset: str  # a tiny_stack format
    before: str  # a piece of the last line of the unmodified script's error on today's stack
    rules: tuple[str, ...]  # the codemod rules the script needs (all must be registered for the after run to count)
    dataset_flag: str | None = "--dataset_name"  # None: the script hard-codes its dataset (see hub_dir)
    hub_dir: str | None = None  # a hub id the script loads itself; the dataset is copied to ./<hub_dir>
    pushes: bool = False  # the script ends with an unconditional trainer.push_to_hub() (offline here)
    skip: str | None = None  # why the script cannot run at all, for a reason unrelated to library versions

    @property
    def id(self) -> str:
        return f"{self.version}-{self.script}"


_IMPORTS, _MODEL_CFG, _PROC, _SFT, _DPO = (
    "trl-imports",
    "trl-model-config",
    "trl-trainer-processing-class",
    "trl-sft-config",
    "trl-dpo-config",
)

CASES = (
    Case("0.8.6", "sft", "text", "No module named 'trl.commands'", (_IMPORTS, _MODEL_CFG, _SFT, _PROC)),
    Case(
        "0.8.6", "dpo", "preference_prompt_chat", "No module named 'trl.commands'", (_IMPORTS, _MODEL_CFG, _DPO, _PROC)
    ),
    Case(
        "0.8.6",
        "reward_modeling",
        "preference_text",
        "cannot import name 'get_kbit_device_map' from 'trl'",
        (_IMPORTS, _MODEL_CFG, _PROC),
        dataset_flag=None,
        hub_dir="Anthropic/hh-rlhf",
    ),
    Case(
        "0.8.6",
        "kto",
        "unpaired_chat",
        "cannot import name 'setup_chat_format' from 'trl'",
        (_IMPORTS, _PROC),
        pushes=True,
    ),
    Case(
        "0.8.6",
        "orpo",
        "preference_prompt_chat",
        "cannot import name 'ORPOConfig' from 'trl'",
        (_IMPORTS, _PROC),
        dataset_flag="--dataset",
    ),
    Case(
        "0.8.6",
        "cpo",
        "preference_prompt_chat",
        "cannot import name 'CPOConfig' from 'trl'",
        (_IMPORTS, _PROC),
        dataset_flag="--dataset",
    ),
    Case("0.11.4", "sft", "text", "No module named 'trl.commands'", (_IMPORTS, _MODEL_CFG, _PROC)),
    Case("0.11.4", "dpo", "preference_chat", "No module named 'trl.commands'", (_IMPORTS, _MODEL_CFG, _PROC)),
    Case(
        "0.11.4",
        "reward_modeling",
        "preference_chat",
        "cannot import name 'get_kbit_device_map' from 'trl'",
        (_IMPORTS, _MODEL_CFG, _PROC),
        pushes=True,
    ),
    Case(
        "0.11.4",
        "kto",
        "preference_chat",
        "cannot import name 'setup_chat_format' from 'trl'",
        (_IMPORTS, _MODEL_CFG, _PROC),
        pushes=True,
    ),
    Case(
        "0.11.4",
        "orpo",
        "preference_chat",
        "cannot import name 'ORPOConfig' from 'trl'",
        (_IMPORTS, _MODEL_CFG),
        skip="TRL 0.11.4's orpo.py calls dataset.map(process, num_prc=...) (a typo): TypeError on every stack",
    ),
    Case(
        "0.11.4", "cpo", "preference_chat", "cannot import name 'CPOConfig' from 'trl'", (_IMPORTS, _MODEL_CFG, _PROC)
    ),
    Case("0.12.2", "sft", "text", "cannot import name 'get_kbit_device_map' from 'trl'", (_IMPORTS, _MODEL_CFG)),
    Case(
        "0.12.2",
        "dpo",
        "preference_chat",
        "cannot import name 'get_kbit_device_map' from 'trl'",
        (_IMPORTS, _MODEL_CFG),
    ),
    Case(
        "0.12.2",
        "reward_modeling",
        "preference_chat",
        "cannot import name 'get_kbit_device_map' from 'trl'",
        (_IMPORTS, _MODEL_CFG),
    ),
    Case("0.12.2", "kto", "unpaired_chat", "cannot import name 'setup_chat_format' from 'trl'", (_IMPORTS, _MODEL_CFG)),
    Case("0.12.2", "orpo", "preference_chat", "cannot import name 'ORPOConfig' from 'trl'", (_IMPORTS, _MODEL_CFG)),
    Case("0.12.2", "cpo", "preference_chat", "cannot import name 'CPOConfig' from 'trl'", (_IMPORTS, _MODEL_CFG)),
)


# The other scripts of the three wheels, and why the harness does not run them (also in tests/e2e/README.md).
_GONE = "its trainer is gone from TRL with no successor ({}); the codemod can only report it"
_VLM = "needs a vision-language checkpoint and an image dataset (not built by tests/e2e/tiny_stack.py)"
_ONLINE = "needs a second model that judges or teaches ({}), in trl.experimental today; not built by the harness"
_COMMON_NOT_RUN = {
    "chat": "an interactive chat REPL (`trl chat`), not a training script",
    "ddpo": _GONE.format("DDPOTrainer: last in TRL 0.23; it also needs diffusers and a Stable Diffusion checkpoint"),
    "ppo": _GONE.format(
        "the <= 0.11 PPOTrainer(config, model, ref_model, tokenizer) API: replaced in 0.12, PPO deleted in 1.13"
    ),
    "ppo_multi_adapter": _GONE.format("the <= 0.11 PPO API, as ppo.py"),
    "vsft_llava": _VLM,
}
NOT_RUN = {
    "0.8.6": dict(_COMMON_NOT_RUN),
    "0.11.4": {
        **_COMMON_NOT_RUN,
        "alignprop": _GONE.format("AlignPropTrainer: last in TRL 0.23; it also needs diffusers"),
        "bco": _GONE.format("BCOTrainer: in trl.experimental from 0.26, deleted in 1.14"),
        "xpo": _GONE.format("XPOTrainer: deleted in 1.14"),
        "nash_md": _GONE.format("NashMDTrainer: deleted in 1.14"),
        "dpo_online": _ONLINE.format("a reward model or judge for OnlineDPOTrainer"),
        "gkd": _ONLINE.format("a teacher model for GKDTrainer"),
        "dpo_visual": _VLM,
    },
}
NOT_RUN["0.12.2"] = {
    **{k: v for k, v in NOT_RUN["0.11.4"].items() if k != "dpo_visual"},
    "dpo_vlm": _VLM,
    "sft_vlm": _VLM,
}


def wheel_cache() -> Path:
    """Where the TRL wheels are kept between sessions: $COMPAT_E2E_WHEELS, else ~/.cache/compat-e2e/wheels."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "compat-e2e" / "wheels"
    return Path(os.environ.get("COMPAT_E2E_WHEELS", default))


def wheel(version: str, cache: Path) -> Path:
    """The TRL `version` wheel in `cache`, downloaded with `pip download --no-deps` unless it is there already."""
    cache.mkdir(parents=True, exist_ok=True)
    name = f"trl-{version}-py3-none-any.whl"
    if not (cache / name).exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(cache),
            f"trl=={version}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode or not (cache / name).exists():
            raise RuntimeError(f"could not download trl=={version} ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return cache / name


def extract_script(version: str, script: str, cache: Path, dest: Path) -> Path:
    """`trl/commands/scripts/<script>.py` of the TRL `version` wheel, written to `dest/<script>.py`."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel(version, cache)) as whl:
        source = whl.read(f"trl/commands/scripts/{script}.py")
    path = dest / f"{script}.py"
    path.write_bytes(source)
    return path


def offline_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
        WANDB_MODE="disabled",
        HF_HOME=str(home / "hf_home"),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    )
    env.pop("TRL_USE_RICH", None)
    return env


@dataclass
class Outcome:
    case: Case
    returncode: int
    log: str
    output_dir: Path
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    changed: int = 0  # tensors that differ from the initial model
    compared: int = 0  # tensors compared (same name and shape)
    codemod: subprocess.CompletedProcess | None = None  # the codemod run on the script, for the "after" mode

    @property
    def error(self) -> str:
        """The last line of the traceback (exception and message), or '' if the script exited cleanly."""
        if self.returncode == 0:
            return ""
        lines = [line for line in self.log.splitlines() if line.strip()]
        for line in reversed(lines):
            if re.match(r"^[\w.]+(Error|Exception|Exit|Enabled|Interrupt)\b", line):
                return re.sub(r" \(/[^)]*\)", "", line.strip())  # "(/path/to/site-packages/...)" says nothing here
        return lines[-1].strip() if lines else f"exit status {self.returncode}"

    @property
    def error_site(self) -> str:
        """`script.py:LINE: code` of the script's innermost frame in the traceback."""
        frames = re.findall(
            rf'File "[^"]*{re.escape(self.case.script)}\.py", line (\d+), in [^\n]*\n\s*([^\n]*)', self.log
        )
        return f"{self.case.script}.py:{frames[-1][0]}: {frames[-1][1].strip()}" if frames else ""

    @property
    def failed_only_at_push(self) -> bool:
        """The script trained and saved, then stopped at its final `push_to_hub()` because the Hub is offline."""
        return (
            self.case.pushes
            and self.returncode != 0
            and "OfflineModeIsEnabled" in self.error
            and "push_to_hub(" in self.error_site
        )

    @property
    def trained(self) -> bool:
        return (
            (self.returncode == 0 or self.failed_only_at_push)
            and len(self.losses) == STEPS
            and all(math.isfinite(x) for x in self.losses)
            and self.changed > self.compared // 2 > 0
        )


def run(script: Path, case: Case, tiny: dict[str, Path], workdir: Path, timeout: int = 600) -> Outcome:
    """Run `script` as the case says (its own CLI flags, tiny model and dataset, 2 steps) with cwd=`workdir`."""
    import shutil
    import time

    workdir.mkdir(parents=True, exist_ok=True)
    output_dir = workdir / "out"
    args = [sys.executable, str(script), "--model_name_or_path", str(tiny["model"]), "--output_dir", str(output_dir)]
    if case.dataset_flag:
        args += [case.dataset_flag, str(tiny[case.dataset])]
    if case.hub_dir:
        target = workdir / case.hub_dir
        if not target.exists():
            shutil.copytree(tiny[case.dataset], target)
    args += COMMON_FLAGS
    start = time.monotonic()
    try:
        done = subprocess.run(
            args, cwd=workdir, env=offline_env(workdir), capture_output=True, text=True, timeout=timeout
        )
        returncode, log = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, log = -9, f"{exc.stdout or ''}{exc.stderr or ''}\nTimeoutExpired: no exit after {timeout} s"
    (workdir / "log.txt").write_text(log, encoding="utf-8")
    outcome = Outcome(case, returncode, log, output_dir, seconds=time.monotonic() - start)
    outcome.losses = logged_losses(output_dir)
    outcome.changed, outcome.compared = changed_tensors(tiny["model"], output_dir)
    return outcome


_BEFORE_DRIVER = r"""
import json, os, runpy, sys, traceback
cases = json.loads(sys.argv[1])
out = {}
for case in cases:
    os.chdir(case["cwd"])
    sys.argv = case["argv"][1:]
    try:
        runpy.run_path(case["argv"][1], run_name="__main__")
        out[case["id"]] = [0, ""]
    except BaseException as exc:  # noqa: B036 - SystemExit too: a parser's exit is a failure of the script
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        out[case["id"]] = [code or 1, traceback.format_exc()]
print("E2E-RESULTS " + json.dumps(out))
"""


def run_shipped(jobs: list[tuple[Path, Case]], tiny: dict[str, Path], workdir: Path, timeout: int = 600):
    """Run the scripts as shipped, one after the other in ONE Python process (torch, transformers and TRL imported
    once): each fails at an import or at its first old call, long before training, so a process each would only
    repeat the imports. Returns case id -> Outcome; a script that does not fail is reported with returncode 0."""
    import shutil
    import time

    payload = []
    for script, case in jobs:
        run_dir = workdir / case.id
        run_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, str(script), "--model_name_or_path", str(tiny["model"]), "--output_dir",
                str(run_dir / "out")]  # fmt: skip
        if case.dataset_flag:
            args += [case.dataset_flag, str(tiny[case.dataset])]
        if case.hub_dir and not (run_dir / case.hub_dir).exists():
            shutil.copytree(tiny[case.dataset], run_dir / case.hub_dir)
        payload.append({"id": case.id, "cwd": str(run_dir), "argv": args + list(COMMON_FLAGS)})
    start = time.monotonic()
    cmd = [sys.executable, "-c", _BEFORE_DRIVER, json.dumps(payload)]
    done = subprocess.run(cmd, cwd=workdir, env=offline_env(workdir), capture_output=True, text=True, timeout=timeout)
    seconds = (time.monotonic() - start) / max(len(jobs), 1)
    line = next((x for x in done.stdout.splitlines() if x.startswith("E2E-RESULTS ")), None)
    if line is None:
        raise RuntimeError(f"the shipped-scripts driver died (exit {done.returncode}):\n{done.stderr[-3000:]}")
    results = json.loads(line[len("E2E-RESULTS ") :])
    outcomes = {}
    for _script, case in jobs:
        code, log = results[case.id]
        out_dir = workdir / case.id / "out"
        (workdir / case.id / "log.txt").write_text(log, encoding="utf-8")
        outcome = Outcome(case, code, log, out_dir, seconds=seconds)
        outcome.losses = logged_losses(out_dir)
        outcome.changed, outcome.compared = changed_tensors(tiny["model"], out_dir)
        outcomes[case.id] = outcome
    return outcomes


def _checkpoint(output_dir: Path) -> Path | None:
    found = sorted(output_dir.glob("checkpoint-*/trainer_state.json"))
    return found[-1].parent if found else None


def logged_losses(output_dir: Path) -> list[float]:
    """The training losses of the last checkpoint's trainer_state.json, one per logged step."""
    checkpoint = _checkpoint(output_dir)
    if checkpoint is None:
        return []
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [float(entry["loss"]) for entry in state.get("log_history", []) if "loss" in entry]


def changed_tensors(initial: Path, output_dir: Path) -> tuple[int, int]:
    """(changed, compared): tensors of the saved model that differ from the initial model's (same name and shape)."""
    from safetensors.torch import load_file

    saved = output_dir / "model.safetensors"
    if not saved.exists():
        checkpoint = _checkpoint(output_dir)
        saved = checkpoint / "model.safetensors" if checkpoint else saved
    if not saved.exists():
        return 0, 0
    import torch

    before, after = load_file(str(initial / "model.safetensors")), load_file(str(saved))
    common = [k for k in before if k in after and before[k].shape == after[k].shape]
    return sum(not torch.equal(before[k], after[k]) for k in common), len(common)


def codemod(script: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m compat.codemod` on `script`, in place, targeting the installed trl/transformers/peft."""
    from importlib import metadata

    targets = []
    for package in ("trl", "transformers", "peft"):
        try:
            targets += ["--target", f"{package}={metadata.version(package)}"]
        except metadata.PackageNotFoundError:
            pass
    cmd = [sys.executable, "-m", "compat.codemod", "--jobs", "1", *targets, str(script)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
