"""The public benchmark corpora of the codemod: real training code from PyPI, rebuildable by anyone.

    python benchmarks/corpus.py           # build (or reuse) the main corpus and its trigger subset, print where
    python benchmarks/corpus.py --extra   # the same for the extra validation corpus

Each archive is fetched with `pip download --no-deps` into .bench/downloads/ (gitignored) and only its .py files are
unpacked, into .bench/<corpus>/full/<package>-<version>/, so that every tool measured sees exactly the same files.
Everything is reused when present; delete .bench/ to rebuild from scratch.

The trigger subset (.bench/<corpus>/trigger/, copies) holds the files that contain a trigger word of some rule of
the codemod's registry, read at run time: the files that pass the first tier of the codemod's pre-filter (a file
outside it never reaches a parser). It is rebuilt whenever the rules' words select a different set of files.

main: the code the codemod was developed against. extra: fine-tuning/RL code from other projects (2023-2025),
to check that what holds on the main corpus holds on code nobody tuned the codemod on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
DOWNLOADS = BENCH / "downloads"


@dataclass(frozen=True)
class Source:
    requirement: str  # name==version, exact
    why: str
    # path prefixes inside the package (an sdist's top folder stripped); the longest prefix that matches decides
    include: tuple[str, ...] = ()  # () = everything not excluded
    exclude: tuple[str, ...] = ()
    sdist: bool = False
    pip_args: tuple[str, ...] = ()  # e.g. the platform of a wheel that is published only per platform

    @property
    def name(self) -> str:
        return self.requirement.partition("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.version}"


CORPORA: dict[str, tuple[Source, ...]] = {
    "main": (
        Source("llmtuner==0.7.1", "LLaMA-Factory's library: loaders, LoRA/QLoRA, trainers"),
        Source("fschat==0.2.36", "FastChat: training scripts, model adapters, serving"),
        Source("axolotl==0.5.2", "axolotl's library (the sdist's src/axolotl)", include=("src/axolotl/",), sdist=True),
        Source("autotrain-advanced==0.8.36", "AutoTrain: trainers for LLM/SFT/DPO/ORPO and other tasks"),
        Source("alignment-handbook==0.3.0", "the alignment handbook's library (model, data and config code)"),
        Source(
            "trl==0.11.4",
            "TRL 0.11 (package and tests), still shipping prepare_peft_model and the other preparation functions",
        ),
    ),
    "extra": (
        Source(
            "openrlhf==0.5.9.post1",
            "OpenRLHF (2025-02): PPO/DPO/RM trainers on transformers, peft, bitsandbytes, DeepSpeed",
            # published only as per-platform wheels (pure Python inside): pin one so that every machine gets it
            pip_args=("--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux1_x86_64"),
        ),
        Source("llama-recipes==0.0.4.post1", "Meta's fine-tuning recipes (2024): peft, FSDP, int8/4-bit loading"),
        Source("xllm==0.1.8", "xllm (2023-12): a QLoRA/LoRA training library on transformers, peft, bitsandbytes"),
        Source("unsloth==2025.1.8", "unsloth (2025-01): loaders and patches over transformers, peft and TRL"),
        Source("instructlab-training==0.7.0", "InstructLab's training library (2025-01): transformers, peft"),
        Source(
            "ms-swift==2.4.2",
            "ModelScope SWIFT (2024-09): the LLM fine-tuning code, its trainers and its diffusers training scripts",
            include=("swift/llm/", "swift/trainers/", "swift/aigc/"),
        ),
        Source(
            "xtuner==0.1.11",
            "XTuner (2023-12): the library and one family of its QLoRA configs (the other 300 repeat them)",
            include=("xtuner/", "xtuner/configs/llama/llama2_7b/"),
            exclude=("xtuner/configs/",),
        ),
        Source("trl==0.19.1", "TRL's own training scripts as of 2025-07 (trl/scripts)", include=("trl/scripts/",)),
        Source(
            "verl==0.3.0.post1",
            "verl (2025-04): FSDP/Megatron RL workers and trainers loading transformers models",
            include=("verl/workers/", "verl/trainer/"),
        ),
    ),
}


def rule_triggers() -> tuple[tuple[str, ...], int, list[str]]:
    """(trigger words, number of rules, ids of rules without words) from the codemod's registry at run time.

    The one place that knows how a rule names its pre-filter words; a rule with no words is a candidate for every
    file (the engine's pre-filter lets everything through to it)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from codemods import RULES
    except Exception as exc:  # a broken registry: say so in one line
        raise SystemExit(
            f"corpus.py: the codemod's rule registry did not import ({type(exc).__name__}: {exc})"
        ) from exc

    words: set[str] = set()
    without: list[str] = []
    for rule in RULES:
        found = getattr(rule, "triggers", None)
        if found is None:
            raise SystemExit(f"corpus.py: rule {getattr(rule, 'id', rule)!r} has no `triggers`: update rule_triggers()")
        found = tuple(w.decode() if isinstance(w, bytes) else str(w) for w in found)
        if not found:
            without.append(getattr(rule, "id", repr(rule)))
        words.update(found)
    return tuple(sorted(words)), len(RULES), without


@dataclass
class Corpus:
    name: str
    root: Path
    files: list[Path]  # absolute, sorted

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)

    def packages(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for p in self.files:
            out.setdefault(p.relative_to(self.root).parts[0], []).append(p)
        return out


def py_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if p.is_file())


def _pip() -> list[str]:
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], check=False, capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip") or shutil.which("pip3")
    if not found:
        raise SystemExit("corpus.py: pip is needed to download the corpus (python -m pip or pip on PATH)")
    return [found]


def download(source: Source) -> Path:
    """The archive of `source`, from .bench/downloads/<name>-<version>/ or fetched there with pip."""
    folder = DOWNLOADS / source.dirname
    suffix = (".tar.gz", ".zip") if source.sdist else (".whl",)
    found = sorted(p for p in folder.glob("*") if p.name.endswith(suffix)) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    kind = ("--no-binary", ":all:") if source.sdist else ("--only-binary", ":all:")
    argv = [*_pip(), "download", "--no-deps", "-q", "-d", str(folder), *(source.pip_args or kind), source.requirement]
    print(f"corpus.py: {' '.join(argv[argv.index('download') :])}", file=sys.stderr)
    proc = subprocess.run(argv, check=False, capture_output=True, text=True)
    found = sorted(p for p in folder.glob("*") if p.name.endswith(suffix))
    if proc.returncode != 0 or not found:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"corpus.py: could not download {source.requirement}:\n{tail}")
    return found[0]


def _members(archive: Path, sdist: bool) -> list[tuple[str, bytes]]:
    """(path inside the package, content) of every .py file of a wheel or an sdist."""
    out: list[tuple[str, bytes]] = []
    if archive.name.endswith(".whl") or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = PurePosixPath(info.filename).parts
                if info.is_dir() or not info.filename.endswith(".py") or parts[0].endswith(".dist-info"):
                    continue
                if sdist:
                    parts = parts[1:]
                elif parts[0].endswith(".data") and len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                    parts = parts[2:]  # a wheel's <name>.data/purelib/<package>/...
                out.append(("/".join(parts), zf.read(info)))
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and member.name.endswith(".py"):
                    rel = "/".join(PurePosixPath(member.name).parts[1:])
                    data = tf.extractfile(member)
                    if data is not None:
                        out.append((rel, data.read()))
    return out


def _selected(rel: str, source: Source) -> bool:
    """The longest matching prefix decides; nothing matching: kept unless there are includes."""
    best_in = max((len(p) for p in source.include if rel.startswith(p)), default=-1)
    best_out = max((len(p) for p in source.exclude if rel.startswith(p)), default=-1)
    if best_in < 0 and best_out < 0:
        return not source.include
    return best_in > best_out


def _unpack(source: Source, target: Path) -> None:
    """Unpack the selected .py files of `source` into `target` (through a temporary folder: all or nothing)."""
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in _members(download(source), source.sdist):
        if not _selected(rel, source):
            continue
        out = tmp / rel.removeprefix("src/")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    if not tmp.is_dir():
        raise SystemExit(f"corpus.py: no .py file selected from {source.requirement}")
    tmp.rename(target)


def build(name: str) -> Corpus:
    """The full corpus `name` ('main' or 'extra'), unpacked under .bench/<name>/full/ (reused when present)."""
    root = BENCH / name / "full"
    root.mkdir(parents=True, exist_ok=True)
    wanted = {source.dirname: source for source in CORPORA[name]}
    for dirname, source in wanted.items():
        if not (root / dirname).is_dir():
            _unpack(source, root / dirname)
    stale = [p for p in root.iterdir() if p.name not in wanted]
    for p in stale:  # a package dropped from the list, or an interrupted unpack
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return Corpus(name, root, py_files(root))


def trigger_subset(corpus: Corpus) -> Corpus:
    """Copies of the files of `corpus` that contain a trigger word of the registry, under .bench/<name>/trigger/."""
    words, _, without = rule_triggers()
    needles = [w.encode() for w in words]
    if without:
        chosen = list(corpus.files)
    else:
        chosen = [p for p in corpus.files if any(n in p.read_bytes() for n in needles)]
    rels = [p.relative_to(corpus.root).as_posix() for p in chosen]
    root = corpus.root.parent / "trigger"
    manifest = corpus.root.parent / "trigger.json"
    want = {"words": list(words), "files": rels}
    try:
        current = json.loads(manifest.read_text())
    except (OSError, ValueError):
        current = None
    if current != want or not root.is_dir() or len(py_files(root)) != len(rels):
        shutil.rmtree(root, ignore_errors=True)
        for rel in rels:
            out = root / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus.root / rel, out)
        root.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(want, indent=1))
    return Corpus(f"{corpus.name} trigger", root, [root / r for r in rels])


def describe(corpus: Corpus, subset: Corpus) -> str:
    words, n_rules, without = rule_triggers()
    lines = [f"{corpus.name} corpus: {corpus.root}: {len(corpus.files)} files, {corpus.bytes:,} bytes"]
    sub = {pkg: len(files) for pkg, files in subset.packages().items()}
    for pkg, files in corpus.packages().items():
        size = sum(p.stat().st_size for p in files)
        lines.append(f"  {pkg:<32} {len(files):>4} files {size:>10,} bytes  {sub.get(pkg, 0):>4} in the trigger subset")
    note = f"; rules without words (every file): {', '.join(without)}" if without else ""
    lines.append(
        f"trigger subset: {subset.root}: {len(subset.files)} files, {subset.bytes:,} bytes "
        f"({len(words)} words of {n_rules} rules{note}: {', '.join(words)})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", action="store_true", help="the extra validation corpus instead of the main one")
    args = parser.parse_args(argv)
    corpus = build("extra" if args.extra else "main")
    print(describe(corpus, trigger_subset(corpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
