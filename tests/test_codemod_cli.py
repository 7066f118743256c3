"""The codemod CLI (`python -m compat.codemod`): modes, exit codes, discovery, encodings, safety, parallelism."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from codemods import cli
from codemods.engine import transform
from codemods.rule import Rule, Settings
from codemods.targets import declared_minimums

ROOT = Path(__file__).resolve().parents[1]

OLD = "from peft import prepare_model_for_int8_training\n\nmodel = prepare_model_for_int8_training(model)\n"
NEW = "from peft import prepare_model_for_kbit_training\n\nmodel = prepare_model_for_kbit_training(model)\n"
TRL_OLD = "from trl.models import prepare_peft_model\n\nmodel = prepare_peft_model(model, cfg, args)\n"
TRL_NEW = "import compat\n\nmodel = compat.prepare_model(model, cfg, args)\n"
CLEAN = "import os\n\nprint(os.getcwd())\n"
TARGETS = ["--target", "peft=0.21", "--target", "transformers=5.24"]


def run(args, capsys=None):
    code = cli.main([*TARGETS, *args])
    if capsys is None:
        return code
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_bytes(text.encode("utf-8"))
    else:
        path.write_bytes(text)
    return path


# ---------------------------------------------------------------------------------------------- imports
def test_cli_imports_no_ml_stack(tmp_path):
    """`python -m compat.codemod` must not import torch/transformers/peft/bitsandbytes (they need not exist)."""
    f = write(tmp_path / "a.py", OLD)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['compat.codemod', '--check', '-q', {str(f)!r}]\n"
        "try:\n"
        "    runpy.run_module('compat.codemod', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft', 'bitsandbytes'))\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1 []", proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------- modes, exit codes
def test_write_mode_rewrites_and_exits_0(tmp_path, capsys):
    f = write(tmp_path / "a.py", OLD)
    code, out, err = run([str(f)], capsys)
    assert code == 0
    assert f.read_text() == NEW
    assert "1 changed" in err and "peft-int8-training: 1 rewrites" in err


def test_diff_mode_prints_and_writes_nothing(tmp_path, capsys):
    f = write(tmp_path / "a.py", OLD)
    code, out, err = run(["--diff", str(f)], capsys)
    assert code == 1
    assert f.read_text() == OLD
    assert "-model = prepare_model_for_int8_training(model)" in out
    assert "+model = prepare_model_for_kbit_training(model)" in out


def test_check_mode_exit_1_and_0(tmp_path, capsys):
    f = write(tmp_path / "a.py", OLD)
    g = write(tmp_path / "b.py", CLEAN)
    code, out, err = run(["--check", str(f), str(g)], capsys)
    assert code == 1 and out == ""
    assert f.read_text() == OLD
    code, out, err = run(["--check", str(g)], capsys)
    assert code == 0


def test_nothing_to_do_exit_0(tmp_path, capsys):
    g = write(tmp_path / "b.py", CLEAN)
    code, out, err = run([str(tmp_path)], capsys)
    assert code == 0 and g.read_text() == CLEAN
    assert "1 skipped by the pre-filter" in err


@pytest.mark.parametrize(
    "args",
    [
        ["--select", "no-such-rule", "x.py"],
        ["--target", "peft", "x.py"],
        ["--target", "peft=abc", "x.py"],
        [],
        ["--jobs", "0", "x.py"],
    ],
)
def test_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2


def test_missing_path_exit_2(tmp_path, capsys):
    code, out, err = run([str(tmp_path / "nope.py")], capsys)
    assert code == 2 and "no such file" in err


def test_list_rules(capsys):
    assert cli.main(["--list-rules"]) == 0
    out = capsys.readouterr().out
    for rule_id in ("trl-prepare-peft-model", "trl-enable-gradient-checkpointing", "trl-prepare-model-for-kbit-training",
                    "trl-peft-module-casting-to-bf16", "peft-int8-training"):  # fmt: skip
        assert rule_id in out
    assert "peft>=0.4" in out


def test_select_and_skip(tmp_path, capsys):
    f = write(tmp_path / "a.py", OLD + TRL_OLD.replace("model = ", "m2 = "))
    code, out, err = run(["--check", "--select", "trl-prepare-peft-model", str(f)], capsys)
    assert "trl-prepare-peft-model" in err and "peft-int8-training" not in err
    code, out, err = run(
        ["--diff", "--skip", "trl-prepare-peft-model,peft-int8-training", str(f)],
        capsys,
    )
    assert code == 0 and out == ""


def test_report_json(tmp_path, capsys):
    write(tmp_path / "a.py", OLD)
    write(tmp_path / "b.py", CLEAN)
    write(tmp_path / "c.py", "import peft\nprepare_model_for_int8_training(\n")
    report = tmp_path / "r.json"
    code, out, err = run(["--check", "--report", str(report), str(tmp_path)], capsys)
    assert code == 2
    data = json.loads(report.read_text())
    assert data["summary"]["scanned"] == 3
    assert data["summary"]["changed"] == 1 and data["summary"]["failed"] == 1 and data["summary"]["prefiltered"] == 1
    assert data["summary"]["rules"]["peft-int8-training"]["rewrites"] == 1
    by_path = {Path(e["path"]).name: e for e in data["files"]}
    assert by_path["a.py"]["status"] == "changed"
    assert by_path["a.py"]["findings"][0]["line"] == 3
    assert by_path["c.py"]["status"] == "failed" and "parse error" in by_path["c.py"]["error"]
    assert data["targets"]["peft"] == {"version": "0.21", "source": "--target"}


# ---------------------------------------------------------------------------------------------- stdin
def test_stdin_to_stdout_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "compat.codemod", *TARGETS, "-"], input=OLD.encode(), capture_output=True, cwd=ROOT,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == NEW
    check = subprocess.run(
        [sys.executable, "-m", "compat.codemod", *TARGETS, "--check", "-"], input=OLD.encode(), capture_output=True,
        cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert check.returncode == 1 and check.stdout == b""
    clean = subprocess.run(
        [sys.executable, "-m", "compat.codemod", *TARGETS, "-"], input=CLEAN.encode(), capture_output=True, cwd=ROOT,
        timeout=120,
    )  # fmt: skip
    assert clean.returncode == 0 and clean.stdout.decode() == CLEAN


def test_stdin_cannot_mix_with_paths(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["-", "x.py"])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------------------------- encodings, bytes
def test_crlf_preserved(tmp_path, capsys):
    f = write(tmp_path / "a.py", OLD.replace("\n", "\r\n").encode())
    assert run([str(f)], capsys)[0] == 0
    assert f.read_bytes() == NEW.replace("\n", "\r\n").encode()


def test_crlf_with_todo_comment(tmp_path, capsys):
    src = "from trl.trainer import peft_module_casting_to_bf16\r\n\r\npeft_module_casting_to_bf16(model)\r\n"
    f = write(tmp_path / "a.py", src.encode())
    assert run([str(f)], capsys)[0] == 3  # rewritten, and a TODO comment left for review
    data = f.read_bytes()
    assert b"# TODO(compat): " in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_bom_preserved(tmp_path, capsys):
    f = write(tmp_path / "a.py", b"\xef\xbb\xbf" + OLD.encode())
    assert run([str(f)], capsys)[0] == 0
    assert f.read_bytes() == b"\xef\xbb\xbf" + NEW.encode()


def test_latin1_cookie_preserved(tmp_path, capsys):
    src = "# -*- coding: latin-1 -*-\n# Gr\u00fc\u00dfe\n" + OLD
    f = write(tmp_path / "a.py", src.encode("latin-1"))
    assert run([str(f)], capsys)[0] == 0
    assert f.read_bytes() == ("# -*- coding: latin-1 -*-\n# Gr\u00fc\u00dfe\n" + NEW).encode("latin-1")


def test_tabs_preserved(tmp_path, capsys):
    src = "def f(model):\n\tfrom peft import prepare_model_for_int8_training\n\treturn prepare_model_for_int8_training(model)\n"
    f = write(tmp_path / "a.py", src)
    assert run([str(f)], capsys)[0] == 0
    assert f.read_text() == src.replace("int8", "kbit")


def test_undecodable_file_reported_and_run_continues(tmp_path, capsys):
    bad = write(tmp_path / "bad.py", b"x = '\xff\xfe' # prepare_model_for_int8_training\n")
    good = write(tmp_path / "good.py", OLD)
    code, out, err = run([str(tmp_path)], capsys)
    assert code == 2
    assert "cannot decode" in err
    assert good.read_text() == NEW
    assert bad.read_bytes() == b"x = '\xff\xfe' # prepare_model_for_int8_training\n"


def test_syntax_error_among_good_files(tmp_path, capsys):
    good1 = write(tmp_path / "a.py", OLD)
    broken_src = "from peft import prepare_model_for_int8_training\ndef f(:\n"
    broken = write(tmp_path / "b.py", broken_src)
    good2 = write(tmp_path / "c.py", TRL_OLD)
    code, out, err = run([str(tmp_path)], capsys)
    assert code == 2
    assert good1.read_text() == NEW and good2.read_text() == TRL_NEW
    assert broken.read_text() == broken_src
    assert "failed: " in err and "b.py" in err and "parse error" in err


def test_unchanged_files_untouched(tmp_path, capsys):
    # a file that passes the pre-filter but has nothing to rewrite keeps its bytes and its mtime
    src = "import peft\r\n\r\ndef prepare_model_for_int8_training(m):\r\n\treturn m\r\n"
    f = write(tmp_path / "a.py", src.encode())
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    code, out, err = run([str(f)], capsys)
    assert code == 0 and "1 unchanged" in err
    assert f.read_bytes() == src.encode()
    assert f.stat().st_mtime_ns == 1_000_000_000


def test_permissions_kept(tmp_path, capsys):
    f = write(tmp_path / "a.py", OLD)
    os.chmod(f, 0o640)
    assert run([str(f)], capsys)[0] == 0
    assert stat.S_IMODE(f.stat().st_mode) == 0o640


def test_skip_file_marker(tmp_path, capsys):
    f = write(tmp_path / "a.py", "# compat: skip-file\n" + OLD)
    code, out, err = run([str(f)], capsys)
    assert code == 0 and "1 skip-file" in err
    assert f.read_text() == "# compat: skip-file\n" + OLD


# ---------------------------------------------------------------------------------------------- safety
def test_interrupted_write_leaves_old_or_new(tmp_path, monkeypatch, capsys):
    """A crash between the temp write and the rename: the target keeps its old bytes, no temp file is left."""
    f = write(tmp_path / "a.py", OLD)

    def boom(src, dst):
        assert Path(src).read_bytes() == NEW.encode()  # the complete new content was written to the temp file
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(cli.os, "replace", boom)
    code, out, err = run(["--jobs", "1", str(f)], capsys)
    assert code == 2 and "simulated crash" in err
    assert f.read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]


def test_interrupted_write_keyboard_interrupt(tmp_path, monkeypatch):
    f = write(tmp_path / "a.py", OLD)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.atomic_write(f, NEW.encode())
    assert f.read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]


def test_atomic_write_replaces_whole_file(tmp_path):
    f = write(tmp_path / "a.py", OLD)
    cli.atomic_write(f, NEW.encode())
    assert f.read_text() == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]


def test_symlink_target_rewritten_link_kept(tmp_path, capsys):
    real = write(tmp_path / "real.py", OLD)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert run([str(link)], capsys)[0] == 0
    assert link.is_symlink() and real.read_text() == NEW


class _BreaksCode(Rule):
    """A deliberately broken rule: its output does not parse."""

    id = "test-breaks-code"
    summary = "test only"
    triggers = ("model",)

    def check(self, ctx):
        for node in ctx.analysis.names["model"]:
            target = ctx.analysis.parent(node)
            # `f() = 1`: not Python
            ctx.edit(
                target,
                lambda n: n.with_changes(targets=[cst.AssignTarget(cst.Call(func=cst.Name("f")))]),
                "x",
            )


class _Crashes(Rule):
    id = "test-crashes"
    summary = "test only"
    triggers = ("model",)

    def check(self, ctx):
        raise RuntimeError("bug in a rule")


def test_engine_rejects_output_that_does_not_parse():
    result = transform("model = 1\n", Settings(), rules=[_BreaksCode])
    assert result.error is not None and "would not parse" in result.error
    assert result.source == "model = 1\n" and not result.changed


def test_engine_reports_a_crashing_rule():
    result = transform("model = 1\n", Settings(), rules=[_Crashes])
    assert result.error is not None and "test-crashes" in result.error


def test_engine_prefilter_means_no_parse(monkeypatch):
    def no_parse(*a, **k):
        raise AssertionError("parsed")

    monkeypatch.setattr(cst, "parse_module", no_parse)
    result = transform("import os\n", Settings())
    assert not result.parsed and result.source == "import os\n"


# ---------------------------------------------------------------------------------------------- parallel
def test_jobs_2_same_as_jobs_1(tmp_path, capsys):
    srcs = {f"m{i}.py": (OLD if i % 3 == 0 else TRL_OLD if i % 3 == 1 else CLEAN) for i in range(12)}
    a, b = tmp_path / "a", tmp_path / "b"
    for name, src in srcs.items():
        write(a / name, src)
        write(b / name, src)
    assert run(["--jobs", "1", str(a)], capsys)[0] == 0
    code, out, err = run(["--jobs", "2", str(b)], capsys)
    assert code == 0
    for name in srcs:
        assert (a / name).read_text() == (b / name).read_text()
    assert "12 files scanned" in err and "8 changed" in err


def test_no_progress_bar_when_not_a_tty(tmp_path, capsys):
    for i in range(60):
        write(tmp_path / f"m{i}.py", CLEAN)
    code, out, err = run([str(tmp_path)], capsys)
    assert "\r" not in err


# ---------------------------------------------------------------------------------------------- discovery
def test_discovery_skips_venvs_builds_and_excludes(tmp_path, capsys):
    write(tmp_path / "pkg" / "a.py", OLD)
    write(tmp_path / ".venv" / "lib" / "x.py", OLD)
    write(tmp_path / "env2" / "pyvenv.cfg", "home = /usr\n")
    write(tmp_path / "env2" / "lib" / "y.py", OLD)
    write(tmp_path / "build" / "z.py", OLD)
    write(tmp_path / ".tox" / "w.py", OLD)
    write(tmp_path / "gen" / "skip_me.py", OLD)
    files, errors = cli.discover([str(tmp_path)], ["gen"])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["pkg/a.py"]


def test_discovery_respects_gitignore(tmp_path, capsys):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path / ".gitignore", "ignored/\n*_gen.py\n")
    write(tmp_path / "src" / "a.py", OLD)
    write(tmp_path / "src" / "b_gen.py", OLD)
    write(tmp_path / "ignored" / "c.py", OLD)
    write(tmp_path / "nb.ipynb", "{}")
    files, _ = cli.discover([str(tmp_path)])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == [
        "nb.ipynb",
        "src/a.py",
    ]
    # an ignored directory named explicitly is walked (the user asked for it)
    files, _ = cli.discover([str(tmp_path / "ignored")])
    assert [p.name for p in files] == ["c.py"]
    # an explicit file is always taken
    files, _ = cli.discover([str(tmp_path / "src" / "b_gen.py")])
    assert [p.name for p in files] == ["b_gen.py"]


# ---------------------------------------------------------------------------------------------- targets
def test_target_default_from_pyproject(tmp_path, capsys, monkeypatch):
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\ndependencies = ["peft>=0.3,<1", "transformers>=4.40"]\n',
    )
    f = write(tmp_path / "src" / "a.py", OLD)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--check", str(f)])
    err = capsys.readouterr().err
    assert "peft=0.3 (minimum in" in err and "pyproject.toml" in err
    assert "off for these targets" in err and "peft-int8-training" in err
    assert code == 0  # peft 0.3 has no prepare_model_for_kbit_training: the rule is off


def test_target_default_from_requirements(tmp_path, capsys, monkeypatch):
    write(tmp_path / "requirements.txt", "peft==0.9.0\ntransformers>=4.46  # comment\n")
    f = write(tmp_path / "a.py", OLD)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--check", str(f)])
    err = capsys.readouterr().err
    assert "peft=0.9.0 (minimum in" in err and code == 1


def test_target_default_installed_or_newest(tmp_path, capsys, monkeypatch):
    f = write(tmp_path / "a.py", OLD)
    monkeypatch.chdir(tmp_path)
    from codemods import targets

    monkeypatch.setattr(targets, "find_declared", lambda start, packages: ({}, None))
    monkeypatch.setattr(targets, "_installed", lambda package: None)
    cli.main(["--check", str(f)])
    err = capsys.readouterr().err
    assert "peft: newest" in err


def test_declared_minimums_parsing():
    text = (
        '"peft>=0.12,<0.20"\n"transformers[torch]~=4.46.0"\n"trl"\n"bitsandbytes>=0.47; platform_system != \'Darwin\'"'
    )
    found = declared_minimums(text, ["peft", "transformers", "trl"])
    assert str(found["peft"]) == "0.12" and str(found["transformers"]) == "4.46.0" and "trl" not in found


# ---------------------------------------------------------------------------------------------- notebooks
def _notebook(cells: list[str], indent: int = 1) -> str:
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": src.splitlines(keepends=True)}
            for src in cells
        ] + [{"cell_type": "markdown", "metadata": {}, "source": ["prepare_model_for_int8_training(model)"]}],
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    return json.dumps(nb, indent=indent, ensure_ascii=False) + "\n"


def test_notebook_code_cells_rewritten_magics_kept(tmp_path, capsys):
    cells = [
        "%pip install peft==0.9.0\n!nvidia-smi\nfrom peft import prepare_model_for_int8_training",
        "%%bash\necho prepare_model_for_int8_training",
        "model = prepare_model_for_int8_training(model)\nmodel?",
        "print('caf\u00e9')",
    ]
    f = write(tmp_path / "a.ipynb", _notebook(cells))
    code, out, err = run([str(f)], capsys)
    assert code == 0, err
    nb = json.loads(f.read_text())
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert sources[0] == "%pip install peft==0.9.0\n!nvidia-smi\nfrom peft import prepare_model_for_kbit_training"
    assert sources[1] == cells[1]  # cell magic untouched
    assert sources[2] == "model = prepare_model_for_kbit_training(model)\nmodel?"
    assert sources[4] == "prepare_model_for_int8_training(model)"  # markdown untouched
    expected = _notebook([sources[0], cells[1], sources[2], cells[3]])
    assert f.read_text() == expected  # same JSON layout as the input


def test_notebook_unchanged_is_byte_identical(tmp_path, capsys):
    text = _notebook(["def prepare_model_for_int8_training(m):\n    return m"], indent=2).replace("\n", "\r\n")
    f = write(tmp_path / "a.ipynb", text.encode())
    code, out, err = run([str(f)], capsys)
    assert code == 0
    assert f.read_bytes() == text.encode()


def test_notebook_indent_2_kept(tmp_path, capsys):
    f = write(tmp_path / "a.ipynb", _notebook([OLD], indent=2))
    assert run([str(f)], capsys)[0] == 0
    assert f.read_text() == _notebook([NEW], indent=2)


def test_invalid_notebook_failed(tmp_path, capsys):
    f = write(tmp_path / "a.ipynb", '{"cells": [prepare_model_for_int8_training')
    code, out, err = run([str(f)], capsys)
    assert code == 2 and "invalid notebook" in err


# ---------------------------------------------------------------------------------------------- pre-commit
def test_pre_commit_hooks_file():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "- id: compat-codemod\n" in text and "entry: compat-codemod\n" in text
    assert "types_or: [python, pyi, jupyter]" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'compat-codemod = "compat.codemod:main"' in pyproject


def test_progress_bar_on_a_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    for i in range(60):
        write(tmp_path / f"m{i}.py", CLEAN if i else OLD)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "compat.codemod", *TARGETS, "--check", "--jobs", "1", str(tmp_path)],
            stderr=slave, stdout=subprocess.DEVNULL, cwd=ROOT, timeout=120,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    err = b"".join(chunks).decode()
    assert proc.returncode == 1
    assert "\r[" in err and "60/60" in err


REALISTIC = '''\
"""QLoRA fine-tuning script, 2024 style: every TRL/peft helper this project migrates off, plus transformers calls."""
import os

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_int8_training
from transformers import AutoModelForCausalLM, TrainingArguments
from trl import SFTTrainer
from trl.trainer.utils import peft_module_casting_to_bf16

try:
    from trl.models.utils import enable_gradient_checkpointing, prepare_peft_model
except ImportError:
    from trl.experimental.utils import enable_gradient_checkpointing, prepare_peft_model


def load(path):
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
    return prepare_model_for_int8_training(model, use_gradient_checkpointing=True)


def main():
    args = TrainingArguments("out", bf16=True)
    model = load(os.environ["MODEL"])
    model = enable_gradient_checkpointing(model, {"use_reentrant": False})
    model = prepare_peft_model(model, LoraConfig(r=16), args)
    if args.bf16:
        peft_module_casting_to_bf16(model)  # keep norms in fp32
    SFTTrainer(model=model, args=args).train()
'''


def test_realistic_script_all_rules_idempotent(tmp_path, capsys):
    f = write(tmp_path / "train.py", REALISTIC)
    code, out, err = run(["--jobs", "1", str(f)], capsys)
    assert code == 3, err  # rewritten; the TODO comment it leaves needs review
    once = f.read_text()
    compile(once, "train.py", "exec")
    assert "import compat\n" in once
    assert "model = compat.prepare_model(model, LoraConfig(r=16), args)" in once
    assert "compat.cast_trainable_params(model)  # keep norms in fp32" in once
    assert "gradient_checkpointing=True" in once and "prepare_model_for_kbit_training(model" in once
    for old in (
        "prepare_peft_model",
        "enable_gradient_checkpointing",
        "peft_module_casting_to_bf16(",
        "int8",
        "try:",
    ):
        assert old not in once, old
    assert once.count("# TODO(compat):") == 1
    code, out, err = run(["--check", str(f)], capsys)
    assert code == 0 and f.read_text() == once


# ---------------------------------------------------------------------------------------------- sites left
UNKNOWN = "import torch\nfrom transformers import AutoTokenizer\n\n\ndef load(cls, p):\n    return cls.from_pretrained(p, torch_dtype=torch.float16)\n"


def test_sites_left_are_listed_with_exit_code_3(tmp_path, capsys):
    """A run whose only findings are diagnostics: nothing written, each site on its own line, exit 3 (CI can tell it
    from a clean run), counted in the summary and listed in the report."""
    f = write(tmp_path / "load.py", UNKNOWN)
    report = tmp_path / "report.json"
    code, out, err = run(["--check", "--report", str(report), str(f)], capsys)
    assert code == 3 and f.read_text() == UNKNOWN
    assert f"{f}:6:11: transformers-torch-dtype unknown receiver" in err
    assert "1 sites need review" in err
    data = json.loads(report.read_text())
    assert data["summary"]["review"] == 1
    (entry,) = data["files"]
    assert [(x["kind"], x["line"], x["col"], x["rule"]) for x in entry["findings"]] == [
        ("diagnostic", 6, 11, "transformers-torch-dtype")
    ]
    assert run(["--check", "--quiet", str(f)], capsys)[0] == 3


def test_add_todos_writes_the_sites_and_strict_is_an_alias(tmp_path, capsys):
    a = write(tmp_path / "a" / "load.py", UNKNOWN)
    b = write(tmp_path / "b" / "load.py", UNKNOWN)
    assert run(["--add-todos", str(a)], capsys)[0] == 3
    assert run(["--strict", str(b)], capsys)[0] == 3
    assert a.read_text() == b.read_text()
    assert (
        "    # TODO(compat): unknown receiver: if a transformers class, write dtype=; see MIGRATION.md#"
        in a.read_text()
    )
    code, out, err = run(["--check", "--add-todos", str(a)], capsys)
    assert code == 3 and "(TODO comment added)" not in err  # already there: reported, not written again


def test_skip_comment_silences_a_site(tmp_path, capsys):
    f = write(tmp_path / "load.py", UNKNOWN.replace("float16)\n", "float16)  # compat: skip\n"))
    code, out, err = run(["--check", str(f)], capsys)
    assert code == 0 and "sites need review" in err and "0 sites need review" in err


def test_notebook_sites_name_the_cell(tmp_path, capsys):
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": UNKNOWN},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    f = write(tmp_path / "nb.ipynb", json.dumps(nb, indent=1))
    code, out, err = run(["--check", str(f)], capsys)
    assert code == 3 and f"{f}:cell 2:6:11: transformers-torch-dtype" in err
