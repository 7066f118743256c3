"""The TRL rules beyond their fixture pairs (tests/codemods/fixtures/trl-*/):

- fixture coverage (positives and negatives per rule) and the pre-filters (a file a rule changes or reports is never
  turned away by its triggers, regex or could_apply);
- the machinery they add: moved keywords laid out like black, argument runs dropped with their line breaks, the
  import split, YAML recipes (transformers keys, files that are not recipes, a field the project declares, CRLF,
  the command line and directory discovery);
- the rewritten code, run against the installed TRL (the e2e tox env has it; skipped elsewhere with the reason): the
  old spelling fails there, the rewrite constructs the configs and trains a tiny model for 2 steps.
"""

from __future__ import annotations

import json
import re
import textwrap
import warnings
from pathlib import Path

import pytest

from codemods import rules_by_id
from codemods.engine import transform
from codemods.recipes import transform_recipe
from codemods.rule import Settings

FIXTURES = Path(__file__).parent / "fixtures"
IDS = ("trl-trainer-processing-class", "trl-sft-config", "trl-dpo-config", "trl-imports", "trl-model-config")


def run(source: str, *ids: str, **targets: str):
    return transform(textwrap.dedent(source), Settings(targets=targets, select=frozenset(ids or IDS)))


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.mark.parametrize("rule_id", IDS)
def test_fixture_coverage(rule_id):
    assert rule_id in rules_by_id()
    cases = sorted((FIXTURES / rule_id).glob("*.py.in"))
    changed = [p for p in cases if p.read_text() != p.with_name(p.name[:-3] + ".out").read_text()]
    assert len(changed) >= 5, f"{rule_id}: few positive cases"
    assert len(cases) - len(changed) >= 2, f"{rule_id}: needs negative cases (.out == .in)"
    assert any(p.with_name(p.name[: -len(".py.in")] + ".diag").exists() for p in cases), f"{rule_id}: no .diag case"


@pytest.mark.parametrize("rule_id", IDS)
@pytest.mark.parametrize("add_todos", [False, True])
def test_prefilter_never_hides_work(rule_id, add_todos):
    """Every fixture (of every rule) that this rule changes or reports passes the rule's text tiers."""
    rule = rules_by_id()[rule_id]
    for path in sorted(FIXTURES.glob("*/*.py.in")):
        source = path.read_text(encoding="utf-8")
        m = re.match(r"#\s*target:\s*(.*)", source)
        targets = dict(item.partition("=")[::2] for item in m.group(1).split()) if m else {}
        settings = Settings(targets=targets, select=frozenset({rule_id}), add_todos=add_todos)
        if not rule.enabled(settings):
            continue
        # run the rule with its pre-filter bypassed: what would it do?
        bypass = type("Unfiltered", (rule,), {"triggers": (), "trigger_regex": None})
        bypass.could_apply = classmethod(lambda cls, s, st: True)
        result = transform(source, settings, rules=[bypass])
        if result.findings:
            assert rule.matches_text(source, settings), f"{rule_id} pre-filter hides {path}"


def test_files_without_trl_are_never_parsed_by_the_trl_rules():
    source = "import torch\nmax_seq_length = 512\nprint(model.torch_dtype, tokenizer)\n"
    result = transform(source, Settings(select=frozenset(IDS)))
    assert not result.parsed


# ------------------------------------------------------------------------------------------------ layout
def test_moved_keywords_keep_line_breaks_and_split_like_black():
    source = """\
    from trl import SFTConfig, SFTTrainer

    def train(model, ds, tok):
        trainer = SFTTrainer(model, args=SFTConfig(output_dir="a-long-output-directory-name", learning_rate=2e-4),
                             train_dataset=ds, dataset_text_field="text", max_seq_length=2048,
                             packing=True, processing_class=tok)
        return trainer
    """
    out = run(source, "trl-sft-config").source
    # the config does not start its line and no longer fits: the trainer call is exploded first, as black does
    assert out == textwrap.dedent("""\
    from trl import SFTConfig, SFTTrainer

    def train(model, ds, tok):
        trainer = SFTTrainer(
            model,
            args=SFTConfig(
                output_dir="a-long-output-directory-name",
                learning_rate=2e-4,
                dataset_text_field="text",
                max_length=2048,
                packing=True,
            ),
            train_dataset=ds,
            processing_class=tok,
        )
        return trainer
    """)
    assert run(out, "trl-sft-config").source == out


def test_one_line_trainer_call_pushed_past_the_line_length_gets_one_argument_per_line():
    source = (
        "from transformers import TrainingArguments\nfrom trl import SFTTrainer\n\n"
        "trainer = SFTTrainer(model, args=TrainingArguments(output_dir='outputs/run-1'), train_dataset=ds, "
        "max_seq_length=2048, packing=True)\n"
    )
    out = run(source, "trl-sft-config").source
    assert out.endswith(
        "trainer = SFTTrainer(\n    model,\n    args=compat.trl_config(SFTConfig, TrainingArguments(output_dir="
        "'outputs/run-1'), max_length=2048, packing=True),\n    train_dataset=ds,\n)\n"
    )
    assert all(len(line) <= 120 for line in out.splitlines()) and "import compat" in out
    assert run(out, "trl-sft-config").source == out


def test_an_args_name_used_elsewhere_is_wrapped_not_edited():
    source = """\
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig("out")
    log(config)
    trainer = SFTTrainer(model, args=config, train_dataset=ds, packing=True)
    """
    out = run(source, "trl-sft-config").source
    assert 'config = SFTConfig("out")\n' in out
    assert "args=compat.trl_config(SFTConfig, config, packing=True)" in out


def test_dpo_positional_arguments_after_ref_model_are_reported():
    result = run("from trl import DPOTrainer\nt = DPOTrainer(m, r, 0.1, beta=0.1)\n", "trl-dpo-config")
    assert result.source.endswith("beta=0.1)\n")
    assert [f.kind for f in result.findings] == ["diagnostic"]


def test_import_split_keeps_aliases_and_parentheses():
    source = """\
    from trl import (
        ModelConfig,
        ORPOConfig as Config,
        ORPOTrainer,
        get_peft_config,
    )
    """
    out = run(source, "trl-imports").source
    assert out == textwrap.dedent("""\
    from trl import (
        ModelConfig,
        get_peft_config,
    )
    from trl.experimental.orpo import ORPOConfig as Config, ORPOTrainer
    """)


def test_two_bindings_of_a_helper_name_are_reported_not_guessed():
    source = """\
    try:
        from trl import setup_chat_format
    except ImportError:
        setup_chat_format = None
    model, tok = setup_chat_format(model, tok)
    """
    result = run(source, "trl-imports")
    assert "compat.setup_chat_format" not in result.source
    assert any(f.kind == "diagnostic" for f in result.findings)


# ------------------------------------------------------------------------------------------------ YAML recipes
RECIPE = """\
# SFT recipe
model_name_or_path: Qwen/Qwen2.5-0.5B
torch_dtype: bfloat16
evaluation_strategy: steps   # keep
per_gpu_train_batch_size: 4
overwrite_output_dir: true
max_seq_length: 2048
output_dir: out
"""


def test_recipe_keys_of_every_rule_at_once():
    result = transform_recipe(RECIPE, Settings())
    assert result.source.splitlines() == [
        "# SFT recipe",
        "model_name_or_path: Qwen/Qwen2.5-0.5B",
        "dtype: bfloat16",
        "eval_strategy: steps   # keep",
        "per_device_train_batch_size: 4",
        (
            "# TODO(compat): overwrite_output_dir dropped (transformers 5.0): no successor; "
            "see MIGRATION.md#transformers-training-args"
        ),
        "max_length: 2048",
        "output_dir: out",
    ]
    assert {f.rule for f in result.findings} == {"trl-model-config", "transformers-training-args", "trl-sft-config"}
    assert transform_recipe(result.source, Settings()).source == result.source


def test_recipe_targets_and_rule_selection():
    old = transform_recipe(RECIPE, Settings(targets={"trl": "0.15", "transformers": "4.40"}))
    # only the rename that is valid on every version (per_gpu_* -> per_device_*) happens below the gates
    assert old.source == RECIPE.replace("per_gpu_", "per_device_")
    only = transform_recipe(RECIPE, Settings(skip=frozenset({"transformers-training-args"})))
    assert "evaluation_strategy: steps" in only.source and "dtype: bfloat16" in only.source


def test_recipe_crlf_and_both_keys():
    text = RECIPE.replace("\n", "\r\n") + "dtype: float16\r\n"
    result = transform_recipe(text, Settings(select=frozenset({"trl-model-config"})))
    assert result.source == text  # torch_dtype beside dtype: reported, not renamed
    assert [(f.kind, f.line) for f in result.findings] == [("diagnostic", 3)]
    crlf = transform_recipe(RECIPE.replace("\n", "\r\n"), Settings(select=frozenset({"trl-sft-config"})))
    assert "max_length: 2048\r\n" in crlf.source and "\n" not in crlf.source.replace("\r\n", "")


@pytest.mark.parametrize(
    "text",
    [
        "name: ci\non: [push]\nmax_seq_length: 512\n",  # too few recipe keys
        "- torch_dtype: bfloat16\n- output_dir: out\n- learning_rate: 1\n",  # a sequence
        "output_dir: a\nlearning_rate: 1\n---\ntorch_dtype: bfloat16\n",  # two documents
        "model:\n  torch_dtype: bfloat16\n  output_dir: a\n  learning_rate: 1\n",  # nested only
    ],
)
def test_yaml_that_is_not_a_recipe_is_left_alone(text):
    result = transform_recipe(text, Settings())
    assert result.source == text and not result.findings


def test_recipe_multiline_value_of_a_dropped_key_is_reported():
    text = "output_dir: a\nlearning_rate: 1\nbeta: 0.1\nref_model_init_kwargs:\n  dtype: bfloat16\n"
    result = transform_recipe(text, Settings())
    assert result.source == text
    assert [(f.rule, f.kind, f.line) for f in result.findings] == [("trl-dpo-config", "diagnostic", 4)]


def test_cli_rewrites_recipes_and_reports_a_field_the_project_declares(tmp_path, capsys):
    from codemods.cli import main

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "sft.yaml").write_text(RECIPE, encoding="utf-8")
    (tmp_path / "recipes" / "ci.yml").write_text("name: ci\njobs:\n  t:\n    torch_dtype: x\n", encoding="utf-8")
    (tmp_path / "args.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass\nclass ScriptArguments:\n    max_seq_length: int = 512\n",
        encoding="utf-8",
    )
    report = tmp_path / "r.json"
    code = main(["--jobs", "1", "--report", str(report), str(tmp_path)])
    assert code == 3  # rewritten, and one site to review
    text = (tmp_path / "recipes" / "sft.yaml").read_text(encoding="utf-8")
    assert "dtype: bfloat16" in text and "max_seq_length: 2048" in text  # the project's own field keeps its name
    assert "ci.yml" not in json.dumps([f for f in json.loads(report.read_text())["files"] if f["status"] == "changed"])
    err = capsys.readouterr().err
    assert "sft.yaml:7:0: trl-sft-config max_seq_length: a dataclass of this project declares it" in err


# ------------------------------------------------------------------------------------------------ against real TRL
@pytest.fixture(scope="module")
def trl():
    return pytest.importorskip("trl", reason="trl is not installed (the e2e tox env runs the TRL rules against it)")


@pytest.fixture(scope="module")
def stack(trl, tmp_path_factory):
    """The e2e harness's tiny Llama and byte-level tokenizer (tests/e2e/tiny_stack.py, loaded by path: tests/ is no
    package on the import path under tox)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_stack", Path(__file__).parents[1] / "e2e" / "tiny_stack.py")
    tiny_stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_stack)
    root = tmp_path_factory.mktemp("trl-rules")
    return {"model": tiny_stack.build_model(root / "model"), "tokenizer": root / "model"}


def rewrite(source: str) -> str:
    """All rules, the targets being the installed stack (as `python -m compat.codemod` defaults to)."""
    from importlib import metadata

    targets = {p: metadata.version(p) for p in ("trl", "transformers", "peft")}
    result = transform(textwrap.dedent(source), Settings(targets=targets))
    assert result.error is None, result.error
    return result.source


def execute(code: str, stack, tmp_path, **extra):
    namespace = {"MODEL": str(stack["model"]), "OUT": str(tmp_path), **extra}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "<rewritten>", "exec"), namespace)
    return namespace


PRELUDE = """\
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
model = AutoModelForCausalLM.from_pretrained(MODEL)
tok = AutoTokenizer.from_pretrained(MODEL)
tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\\n{% endfor %}"
text = Dataset.from_dict({"text": [f"Q: {i}? A: {i + 1}." for i in range(8)]})
pairs = Dataset.from_dict({"prompt": ["Q: 1?"] * 8, "chosen": [" A: 2."] * 8, "rejected": [" A: 3."] * 8})
common = dict(max_steps=2, logging_steps=1, report_to="none", use_cpu=True, per_device_train_batch_size=2,
              save_strategy="no", bf16=False)
"""


def losses(trainer) -> list[float]:
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def test_sft_script_of_trl_0_8_trains_after_the_rewrite(trl, stack, tmp_path):
    old = (
        PRELUDE
        + """
from trl import SFTTrainer
args = TrainingArguments(OUT, **common)
trainer = SFTTrainer(model, args=args, train_dataset=text, dataset_text_field="text", max_seq_length=32,
                     packing=False, tokenizer=tok)
trainer.train()
"""
    )
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        execute(old, stack, tmp_path)
    new = rewrite(old)
    assert "compat.trl_config(SFTConfig, args, dataset_text_field=" in new and "processing_class=tok" in new
    ns = execute(new, stack, tmp_path)
    assert len(losses(ns["trainer"])) == 2
    assert ns["trainer"].args.max_length == 32 and ns["trainer"].args.learning_rate == 5e-5  # TrainingArguments'


def test_dpo_keywords_and_removed_fields_after_the_rewrite(trl, stack, tmp_path):
    old = (
        PRELUDE
        + """
from trl import DPOConfig, DPOTrainer
config = DPOConfig(OUT, max_prompt_length=16, rpo_alpha=0.5, generate_during_eval=False, **common)
trainer = DPOTrainer(model, None, args=config, train_dataset=pairs, tokenizer=tok, beta=0.2, max_length=32)
trainer.train()
"""
    )
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        execute(old, stack, tmp_path)
    new = rewrite(old)
    assert "TODO(compat): max_prompt_length=16 dropped" in new
    ns = execute(new, stack, tmp_path)
    args = ns["trainer"].args
    assert (args.beta, args.max_length, args.loss_weights) == (0.2, 32, [1.0, 0.5])
    assert list(args.loss_type) == ["sigmoid", "sft"] and len(losses(ns["trainer"])) == 2


def test_grpo_kto_orpo_cpo_configs_construct_after_the_rewrite(trl, stack, tmp_path):
    old = """
from trl import CPOConfig, GRPOConfig, KTOConfig, ORPOConfig
g = GRPOConfig(OUT, max_prompt_length=64, vllm_guided_decoding_regex="[0-9]+", wandb_log_unique_prompts=True,
               report_to="none", use_cpu=True, bf16=False)
k = KTOConfig(OUT, max_prompt_length=64, max_completion_length=64, report_to="none", use_cpu=True, bf16=False)
o = ORPOConfig(OUT, max_prompt_length=64, report_to="none", use_cpu=True, bf16=False)
c = CPOConfig(OUT, max_prompt_length=64, padding_value=0, report_to="none", use_cpu=True, bf16=False)
"""
    with pytest.raises((TypeError, ImportError)):
        execute(old, stack, tmp_path)
    ns = execute(rewrite(old), stack, tmp_path)
    assert ns["g"].vllm_structured_outputs_regex == "[0-9]+" and ns["g"].log_unique_prompts is True
    assert {type(ns[k]).__name__ for k in "koc"} == {"KTOConfig", "ORPOConfig", "CPOConfig"}


def test_imports_and_helpers_after_the_rewrite(trl, stack, tmp_path):
    old = """
from trl import ORPOTrainer, set_seed, get_kbit_device_map, setup_chat_format
from trl.trainer.utils import SIMPLE_CHAT_TEMPLATE, DPODataCollatorWithPadding
from transformers import AutoModelForCausalLM, AutoTokenizer
set_seed(0)
model = AutoModelForCausalLM.from_pretrained(MODEL, device_map=get_kbit_device_map())
tok = AutoTokenizer.from_pretrained(MODEL)
model, tok = setup_chat_format(model, tok)
collator = DPODataCollatorWithPadding(pad_token_id=tok.pad_token_id)
template = SIMPLE_CHAT_TEMPLATE
"""
    with pytest.raises(ImportError):
        execute(old, stack, tmp_path)
    new = rewrite(old)
    assert "from trl.experimental.orpo import ORPOTrainer" in new and "import compat" in new
    ns = execute(new, stack, tmp_path)
    assert ns["tok"].chat_template and ns["template"].startswith("{% for message in messages %}")


def test_model_config_reads_after_the_rewrite(trl, stack, tmp_path):
    old = """
import sys
from transformers import AutoModelForCausalLM, HfArgumentParser
from trl import ModelConfig, SFTConfig
sys.argv = ["x", "--output_dir", OUT, "--model_name_or_path", MODEL, "--bf16", "False"]
training_args, model_config = HfArgumentParser((SFTConfig, ModelConfig)).parse_args_into_dataclasses()
model = AutoModelForCausalLM.from_pretrained(
    model_config.model_name_or_path, dtype=model_config.torch_dtype, trust_remote_code=model_config.trust_remote_code
)
"""
    with pytest.raises(AttributeError):
        execute(old, stack, tmp_path)
    new = rewrite(old)
    assert "model_config.dtype" in new and "training_args.trust_remote_code" in new
    assert execute(new, stack, tmp_path)["model"] is not None


def test_recipe_rewrite_parses_with_trl_parser(trl, stack, tmp_path):
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model_name_or_path: {stack['model']}\ntorch_dtype: float32\nmax_seq_length: 64\noutput_dir: {tmp_path}\n"
        "evaluation_strategy: 'no'\nbf16: false\ndataset_name: x\n",
        encoding="utf-8",
    )

    def parse():
        parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
        return parser.parse_args_and_config(["--config", str(recipe)])

    with pytest.raises(Exception):  # noqa: B017 - TrlParser refuses the old keys (its exception type varies)
        parse()
    recipe.write_text(transform_recipe(recipe.read_text(), Settings()).source, encoding="utf-8")
    _, training_args, model_config = parse()[:3]
    assert (training_args.max_length, model_config.dtype, training_args.eval_strategy) == (64, "float32", "no")
