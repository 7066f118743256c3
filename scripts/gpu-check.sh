#!/usr/bin/env bash
# GPU check: the `gpu` tests (seven scenarios on CUDA, Q-LoRA fp16/bf16 compute, 8-bit LoRA, Q-LoRA peak memory vs
# peft's prepare_model_for_kbit_training) plus `python -m compat.scenarios --device cuda`, then one summary table.
# Fits in 8 minutes (each part has its own time limit below); exits non-zero if a part failed.
#
#   bash scripts/gpu-check.sh --fetch    here (with pip): download the bitsandbytes wheel into .whl/ (gitignored)
#   bash scripts/gpu-check.sh            on the GPU machine: installs .whl/*.whl (if any) into /tmp/site, runs all
#
# With the device tool: run(command="bash scripts/gpu-check.sh", carry=[".whl"], timeout_s=540). The machine has
# torch, transformers, peft, accelerate and pytest; bitsandbytes travels as a wheel (py3-none, any Python). Results also land in
# $OUT (or /tmp/gpu-check): pytest.log, junit.xml, scenarios.md, memory.txt, summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BNB_VERSION=${BNB_VERSION:-0.50.2}

if [[ "${1:-}" == "--fetch" ]]; then
    mkdir -p .whl
    plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    for req in "bitsandbytes==$BNB_VERSION"; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${plat[@]}" -d .whl "$req" || exit 1
    done
    ls -l .whl
    exit 0
fi

OUT_DIR=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT_DIR"
export GPU_CHECK_OUT=$OUT_DIR PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu-check: installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -m compat.versions

echo "== pytest -m gpu (limit 330 s)"
timeout 330 python3 -m pytest -m gpu tests/test_gpu.py -q -rA -p no:cacheprovider -o addopts="" \
    --junitxml "$OUT_DIR/junit.xml" 2>&1 | tee "$OUT_DIR/pytest.log"
pytest_rc=${PIPESTATUS[0]}

echo "== python -m compat.scenarios --device cuda (limit 120 s)"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    timeout 120 python3 -m compat.scenarios --device cuda --steps 4 > "$OUT_DIR/scenarios.md"
    scenarios_rc=$?
else
    echo "skipped: no CUDA device" > "$OUT_DIR/scenarios.md"
    scenarios_rc=0
fi
cat "$OUT_DIR/scenarios.md"

python3 - "$OUT_DIR" "$pytest_rc" "$scenarios_rc" "$start" <<'EOF' | tee "$OUT_DIR/summary.md"
import os, sys, time, xml.etree.ElementTree as ET
out, pytest_rc, scenarios_rc, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = []
try:
    for case in ET.parse(os.path.join(out, "junit.xml")).getroot().iter("testcase"):
        outcome, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                detail = (node.get("message") or "").splitlines()[0][:90] if node.get("message") else ""
        rows.append((case.get("name"), outcome, float(case.get("time", 0)), detail))
except (OSError, ET.ParseError) as exc:
    rows.append(("(pytest produced no junit.xml)", f"ERROR {exc}", 0.0, ""))
width = max(len(r[0]) for r in rows)
print(f"\n## GPU check ({time.time() - start:.0f} s)\n")
print(f"| {'test':<{width}} | outcome | seconds | detail |")
print(f"|{'-' * (width + 2)}|---------|---------|--------|")
for name, outcome, secs, detail in rows:
    print(f"| {name:<{width}} | {outcome:<7} | {secs:7.1f} | {detail} |")
counts = {k: sum(r[1] == k for r in rows) for k in ("passed", "skipped", "FAILED", "ERROR")}
print("\n" + ", ".join(f"{v} {k.lower()}" for k, v in counts.items()))
memory = os.path.join(out, "memory.txt")
if os.path.exists(memory):
    print("\nQ-LoRA peak CUDA memory (40M-parameter Qwen3, batch 4 x 256 tokens, bf16 autocast):")
    print(open(memory).read())
print(f"pytest exit {pytest_rc}, compat.scenarios exit {scenarios_rc}")
EOF

[[ $pytest_rc -eq 0 || $pytest_rc -eq 5 ]] && [[ $scenarios_rc -eq 0 ]]
