"""YAML recipes: the renamed and removed keys of TRL/transformers configs in the YAML files that feed them
(`TrlParser(...).parse_args_and_config()`, `parser.parse_yaml_file(...)`, alignment-handbook / TRL recipes).

A pure text transform beside the engine (like codemods.notebooks), no YAML library: only TOP-LEVEL keys of a block
mapping are touched, by replacing the key token on its line (`torch_dtype: bfloat16` -> `dtype: bfloat16`), so
comments, quoting, order, anchors and blank lines stay byte-identical. A key whose field is gone without a successor
is replaced by a `# TODO(compat): ...` comment line that says what it was and what replaces it, when its value is a
scalar on the same line (else reported). The same keys and gates as the Python rules (trl-model-config,
trl-sft-config, trl-dpo-config, transformers-training-args' plain renames and removals), under those rules' ids, so
`--select`/`--skip` and the targets apply.

Reported instead of rewritten: a file that does not read as a recipe is left alone silently (fewer than 3 top-level
keys that are TRL/transformers config fields, or not one block mapping: CI files, docker-compose, model cards);
the new key already present; a dropped key with a multi-line value; a key that a dataclass of the project declares
(`max_seq_length: int = ...`: the recipe may feed the project's own parser, whose field keeps its name); a quoted
old key.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codemods.engine import Result
from codemods.rule import SKIP_FILE_RE, TODO_PREFIX, Finding, Settings, requirements

__all__ = ["RECIPE_SUFFIXES", "KeyChange", "key_changes", "transform_recipe"]

RECIPE_SUFFIXES = (".yaml", ".yml")
MAX_TODO = 120
_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w.-]*)(?P<ws>[ \t]*):(?P<rest>(?:[ \t].*)?)$")
_QUOTED_KEY = re.compile(r"""^(?P<q>["'])(?P<key>[A-Za-z_]\w*)(?P=q)[ \t]*:""")
_SKIP = re.compile(r"#\s*compat:\s*skip(?!-file)\b")
# Fields of TrainingArguments, the TRL configs, ModelConfig and ScriptArguments that recipes set: a file with at
# least 3 of them as top-level keys is a recipe.
KNOWN = frozenset(
    """output_dir learning_rate num_train_epochs max_steps per_device_train_batch_size per_device_eval_batch_size
    gradient_accumulation_steps gradient_checkpointing gradient_checkpointing_kwargs logging_steps logging_strategy
    save_steps save_strategy save_total_limit eval_steps eval_strategy evaluation_strategy bf16 fp16 tf32 seed
    lr_scheduler_type lr_scheduler_kwargs warmup_steps warmup_ratio weight_decay optim max_grad_norm report_to
    push_to_hub hub_model_id hub_strategy overwrite_output_dir do_eval do_train run_name log_level logging_first_step
    remove_unused_columns dataloader_num_workers ddp_find_unused_parameters deepspeed fsdp fsdp_config torch_compile
    use_liger_kernel model_name_or_path model_revision torch_dtype dtype trust_remote_code attn_implementation
    use_peft lora_r lora_alpha lora_dropout lora_target_modules lora_modules_to_save load_in_4bit load_in_8bit
    bnb_4bit_quant_type use_bnb_nested_quant dataset_name dataset_config dataset_train_split dataset_test_split
    dataset_mixer dataset_splits preprocessing_num_workers chat_template max_seq_length max_length packing
    dataset_text_field dataset_num_proc dataset_kwargs eval_packing completion_only_loss assistant_only_loss
    model_init_kwargs beta loss_type max_prompt_length max_completion_length label_smoothing ref_model_init_kwargs
    num_generations temperature use_vllm vllm_mode reward_funcs reward_weights""".split()
)


@dataclass(frozen=True)
class KeyChange:
    """One top-level key: renamed to `new`, or dropped (`new` None) with a TODO naming `when` and what replaces it
    (`hints`, longest first), from `gate` on (None: whenever its rule runs)."""

    rule: str
    old: str
    new: str | None
    gate: str | None
    when: str = ""
    hints: tuple[str, ...] = ()


@functools.cache
def key_changes() -> dict[str, KeyChange]:
    """The recipe keys, from the Python rules' own tables (first entry wins)."""
    from codemods.rules import _trainers
    from codemods.rules.transformers_training_args import FIELDS as TRAINING_ARGS
    from codemods.rules.trl_dpo_config import DPO_FIELDS, GRPO_FIELDS
    from codemods.rules.trl_model_config import DTYPE_GATE
    from codemods.rules.trl_sft_config import SFT_FIELDS, Gone

    out: dict[str, KeyChange] = {"torch_dtype": KeyChange("trl-model-config", "torch_dtype", "dtype", DTYPE_GATE)}
    # keys that some config of today's TRL still has: a recipe cannot say which trainer it is for
    still_somewhere = {"max_completion_length", "is_encoder_decoder", "padding_value", "generate_during_eval"}
    for rule, fields in (("trl-sft-config", SFT_FIELDS), ("trl-dpo-config", DPO_FIELDS + GRPO_FIELDS),
                         ("transformers-training-args", TRAINING_ARGS)):  # fmt: skip
        for field in fields:
            if field.old in out or field.old in still_somewhere:
                continue
            new = _trainers.simple_rename(field)
            if new is not None:
                out[field.old] = KeyChange(rule, field.old, new, field.gate)
            elif isinstance(field, Gone):
                out[field.old] = KeyChange(rule, field.old, None, field.gate, field.when, field.hints)
            elif _trainers.no_successor(field):
                out[field.old] = KeyChange(rule, field.old, None, field.gate, "transformers 5.0", ("no successor",))
    return out


def _active(change: KeyChange, settings: Settings) -> bool:
    from codemods import rules_by_id

    rule = rules_by_id().get(change.rule)
    if rule is None or not rule.enabled(settings):
        return False
    return change.gate is None or settings.meets(requirements((change.gate,)))


def _link(rule: str) -> str:
    return f"MIGRATION.md#{rule}"


def _todo(rule: str, wordings: Sequence[str]) -> str:
    text = ""
    for why in wordings:
        text = f"{TODO_PREFIX}{why}; see {_link(rule)}"
        if len(text) <= MAX_TODO:
            return text
    return text


@dataclass
class _Key:
    index: int  # line index
    key: str
    ws: str
    rest: str  # after the colon, comment included


def _value(rest: str) -> str:
    """The scalar on a key's line, without its comment ('' when none)."""
    text = rest.strip()
    if not text or text.startswith("#"):
        return ""
    if text[0] in "\"'":
        q = text[0]
        end = text.find(q, 1)
        return text[: end + 1] if end > 0 else text
    return re.split(r"[ \t]+#", text, maxsplit=1)[0].rstrip()


def _scan(lines: Sequence[str]) -> tuple[list[_Key], list[tuple[int, str]]] | None:
    """The top-level keys of a one-document block mapping (None: not one), and the quoted top-level keys."""
    keys: list[_Key] = []
    quoted: list[tuple[int, str]] = []
    seen_content = False
    for i, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            if not seen_content:
                return None  # an indented first line: not a top-level block mapping
            continue
        if line.startswith(("---", "...")):
            if seen_content or line.strip() not in ("---", "..."):
                return None  # several documents, or a document marker with content
            continue
        seen_content = True
        m = _KEY.match(line)
        if m is not None:
            keys.append(_Key(i, m.group("key"), m.group("ws"), m.group("rest")))
            continue
        q = _QUOTED_KEY.match(line)
        if q is not None:
            quoted.append((i, q.group("key")))
            continue
        return None  # a top-level sequence, flow collection, complex key...
    return keys, quoted


@functools.lru_cache(maxsize=64)
def _declared_fields(roots: tuple[str, ...], key: str) -> bool:
    """Some Python file under `roots` declares `key` as an annotated class attribute (a dataclass field)."""
    from codemods.discovery import SKIP_DIRS

    pattern = re.compile(rf"^[ \t]+{re.escape(key)}[ \t]*:[ \t]*[\w\[\"']", re.MULTILINE)
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
            for name in files:
                if not name.endswith(".py"):
                    continue
                try:
                    text = Path(dirpath, name).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if key in text and pattern.search(text):
                    return True
    return False


def could_apply(text: str) -> bool:
    return any(re.search(rf"^{re.escape(k)}[ \t]*:", text, re.MULTILINE) for k in key_changes()) or any(
        re.search(rf"^[\"']{re.escape(k)}[\"']", text, re.MULTILINE) for k in key_changes()
    )


def transform_recipe(text: str, settings: Settings, filename: str | None = None, project=None) -> Result:
    """Rewrite the top-level keys of the YAML recipe `text` (see the module docstring)."""
    if "compat:" in text and SKIP_FILE_RE.search(text):
        return Result(text, skipped_file=True)
    if not could_apply(text):
        return Result(text)
    lines = text.splitlines(keepends=True)
    scanned = _scan(lines)
    if scanned is None:
        return Result(text)
    keys, quoted = scanned
    names = {k.key for k in keys}
    changes = key_changes()
    if len([n for n in names if n in KNOWN or n in changes]) < 3:
        return Result(text)
    roots = tuple(str(r) for r in getattr(project, "roots", ())) if project is not None else ()
    newline = "\r\n" if "\r\n" in text else "\n"
    findings: list[Finding] = []
    todos_above: dict[int, list[str]] = {}

    def report(change: KeyChange, index: int, message: str) -> None:
        if settings.add_todos:
            todo = _todo(change.rule, [message])
            todos_above.setdefault(index, []).append(todo)
            findings.append(Finding(change.rule, "todo", index + 1, todo[len(TODO_PREFIX) :], 0))
        else:
            findings.append(Finding(change.rule, "diagnostic", index + 1, message, 0))

    for index, key in quoted:
        change = changes.get(key)
        if change is not None and _active(change, settings):
            report(change, index, f'quoted key "{key}": rename/drop it by hand ({_what(change)})')
    for k in keys:
        change = changes.get(k.key)
        if change is None or not _active(change, settings) or _SKIP.search(lines[k.index]):
            continue
        if roots and _declared_fields(roots, k.key):
            report(change, k.index, f"{k.key}: a dataclass of this project declares it; if TRL's, {_what(change)}")
            continue
        if change.new is not None:
            if change.new in names:
                report(change, k.index, f"both {k.key}: and {change.new}: are set; keep {change.new}: only")
                continue
            line = lines[k.index]
            ending = line[len(line.rstrip("\r\n")) :]
            lines[k.index] = f"{change.new}{k.ws}:{k.rest}{ending}"
            findings.append(Finding(change.rule, "rewrite", k.index + 1, f"{k.key}: -> {change.new}:", 0))
            continue
        value = _value(k.rest)
        if not value or value[0] in "|>&*[{!" or _continues(lines, k.index):
            report(change, k.index, f"{k.key}: has a multi-line value: delete it by hand ({_what(change)})")
            continue
        wordings = [f"{k.key}: {value} dropped ({change.when}): {h}" for h in change.hints if len(value) <= 16]
        wordings += [f"{k.key} dropped ({change.when}): {h}" for h in change.hints]
        todo = _todo(change.rule, wordings)
        line = lines[k.index]
        ending = line[len(line.rstrip("\r\n")) :] or newline
        lines[k.index] = todo + ending
        findings.append(Finding(change.rule, "todo", k.index + 1, todo[len(TODO_PREFIX) :], 0))
    if not findings:
        return Result(text, parsed=True)
    for index in sorted(todos_above, reverse=True):
        lines[index:index] = [t + newline for t in todos_above[index]]
    out = "".join(lines)
    findings.sort(key=lambda f: (f.line, f.rule))
    if out == text:
        return Result(text, [f for f in findings if f.kind == "diagnostic"], parsed=True)
    return Result(out, findings, parsed=True)


def _what(change: KeyChange) -> str:
    if change.new is not None:
        return f"it is {change.new}: now"
    return f"gone ({change.when})"


def _continues(lines: Sequence[str], index: int) -> bool:
    """The key's value goes on over the next lines (they are indented)."""
    for line in lines[index + 1 :]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        return line[0] in " \t"
    return False
