"""Repo-wide knowledge: a class or registry defined in one file of the project, used in another."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from codemods import cli

HERE = Path(__file__).parent / "project"


def test_subclasses_and_registries_from_other_files(tmp_path, capsys):
    """component/model.py subclasses a transformers model and keeps a registry of model classes, component/args.py
    subclasses TRL's SFTConfig; train.py uses them: every use is recognised and rewritten."""
    project = tmp_path / "project"
    shutil.copytree(HERE / "before", project)
    code = cli.main(
        [
            "--target",
            "transformers=5.24",
            "--target",
            "peft=0.21",
            "--jobs",
            "1",
            str(project),
        ]
    )
    assert code == 0, capsys.readouterr().err
    compared = filecmp.dircmp(project, HERE / "after")
    assert not compared.diff_files and not compared.left_only and not compared.right_only
    for sub in compared.subdirs.values():
        assert not sub.diff_files and not sub.left_only and not sub.right_only
    assert (project / "train.py").read_text() == (HERE / "after" / "train.py").read_text()


def test_without_the_other_files_the_uses_are_unknown(tmp_path, capsys):
    """The same file alone (its project's other files absent): the model class and the registry are unknown, so
    nothing is rewritten and every such use is reported."""
    alone = tmp_path / "train.py"
    shutil.copy(HERE / "before" / "train.py", alone)
    code = cli.main(["--target", "transformers=5.24", "--check", str(alone)])
    err = capsys.readouterr().err
    assert code == 3 and alone.read_text() == (HERE / "before" / "train.py").read_text()
    sites = sorted(line.split(": ", 1)[0].rsplit(":", 2)[-2] + " " + line.split(": ", 1)[1].split()[0]
                   for line in err.splitlines() if line.startswith(str(alone)))  # fmt: skip
    assert sites == [
        "10 transformers-load-in-kbit",
        "10 transformers-torch-dtype",
        "11 transformers-torch-dtype",
    ], err
