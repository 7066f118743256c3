"""The three transformers rules beyond their fixture pairs (tests/codemods/fixtures/transformers-*/):

- fixture coverage (positives and negatives, both sides of each target gate);
- unknown receivers: one diagnostic each, no change; with --add-todos one TODO each (never twice);
- the pre-filters: the text tiers never turn away a file a rule would change or report (checked over every fixture
  of every rule, with and without --add-todos), and files that only mention the names are never parsed by libcst;
- newline / BOM preservation, a combined run of the three rules on one messy script;
- the rewritten code, executed against the installed transformers (5.x) on a tiny model: it runs, without the
  FutureWarnings/deprecation logs of the old spelling, where the old spelling fails or is silently ignored.
"""

from __future__ import annotations

import ast
import dataclasses
import textwrap
import warnings
from pathlib import Path

import libcst as cst
import pytest

from codemods import rules_by_id
from codemods.engine import transform
from codemods.rule import Settings
from codemods.rules.transformers_activation_checkpointing import (
    TransformersActivationCheckpointing,
)
from codemods.rules.transformers_load_in_kbit import TransformersLoadInKbit
from codemods.rules.transformers_torch_dtype import TransformersTorchDtype

FIXTURES = Path(__file__).parent / "fixtures"
MINE = (
    TransformersTorchDtype,
    TransformersLoadInKbit,
    TransformersActivationCheckpointing,
)
IDS = [r.id for r in MINE]


def run(source: str, *rules, add_todos: bool = False):
    return transform(
        textwrap.dedent(source),
        Settings(add_todos=add_todos),
        rules=list(rules or MINE),
    )


# ------------------------------------------------------------------------------------------------ fixtures
def test_registered():
    registry = rules_by_id()
    for rule in MINE:
        assert registry[rule.id] is rule


@pytest.mark.parametrize("rule_id", IDS)
def test_fixture_coverage(rule_id: str):
    cases = sorted((FIXTURES / rule_id).glob("*.py.in"))
    positives = [p for p in cases if p.read_text() != p.with_name(p.name[:-3] + ".out").read_text()]
    negatives = [p for p in cases if p not in positives]
    assert positives and negatives
    gated = [p for p in cases if p.read_text().startswith("# target:")]
    assert any(p in positives for p in gated) and any(p in negatives for p in gated), "gate tested on both sides"


# ------------------------------------------------------------------------------------------------ unknown receivers
STRICT_CASES = {
    TransformersTorchDtype: """\
        import torch
        from transformers import AutoConfig

        def load(model_class, name):
            return model_class.from_pretrained(name, torch_dtype=torch.float16)
        """,
    TransformersLoadInKbit: """\
        from transformers import AutoConfig

        def load(model_class, name):
            return model_class.from_pretrained(name, load_in_8bit=True)
        """,
    TransformersActivationCheckpointing: """\
        from transformers import TrainingArguments

        def setup(model, args):
            if args.gradient_checkpointing:
                model.gradient_checkpointing_enable()
            return model.is_gradient_checkpointing
        """,
}


@pytest.mark.parametrize("rule", MINE, ids=IDS)
def test_unknown_receivers_are_reported_and_written_as_todos_on_request(rule):
    source = textwrap.dedent(STRICT_CASES[rule])
    plain = run(source, rule)
    assert plain.source == source and plain.findings
    assert all(f.kind == "diagnostic" and f.line > 0 for f in plain.findings)

    todos = run(source, rule, add_todos=True)
    written = [f for f in todos.findings if f.kind == "todo"]
    assert written and all(f.kind == "todo" for f in todos.findings)
    assert todos.source.count("# TODO(compat):") == len(written)
    assert f"MIGRATION.md#{rule.id}" in todos.source
    ast.parse(todos.source)
    again = run(todos.source, rule, add_todos=True)
    assert again.source == todos.source and all(f.kind == "diagnostic" for f in again.findings)


def test_each_unknown_use_gets_one_diagnostic():
    result = run(
        STRICT_CASES[TransformersActivationCheckpointing],
        TransformersActivationCheckpointing,
    )
    # args.gradient_checkpointing, model.gradient_checkpointing_enable(), model.is_gradient_checkpointing
    assert [(f.line, f.kind) for f in result.findings] == [
        (4, "diagnostic"),
        (5, "diagnostic"),
        (6, "diagnostic"),
    ]


# ------------------------------------------------------------------------------------------------ pre-filters
def _open(rule):
    """The rule without its text pre-filter: what its analysis alone would do."""
    return type(
        f"Open{rule.__name__}",
        (rule,),
        {"matches_text": classmethod(lambda cls, source, settings=None: True)},
    )


ALL_FIXTURE_SOURCES = sorted(FIXTURES.glob("*/*.py.in"))


@pytest.mark.parametrize("add_todos", [False, True], ids=["default", "add-todos"])
@pytest.mark.parametrize("rule", MINE, ids=IDS)
def test_prefilter_never_hides_work(rule, add_todos):
    """Over every fixture of every rule: when the analysis would rewrite or report, the pre-filter lets it through."""
    settings = Settings(add_todos=add_todos)
    opened = _open(rule)
    acted = 0
    for path in ALL_FIXTURE_SOURCES:
        source = path.read_text(encoding="utf-8")
        result = transform(source, settings, rules=[opened])
        if result.findings:
            acted += 1
            assert rule.matches_text(source, settings), f"{rule.id} pre-filter rejects {path.parent.name}/{path.name}"
    assert acted


@pytest.mark.parametrize(
    "source",
    [
        # names in docstrings, comments, attributes, fields and argparse flags only
        '''\
        """Example::

            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float16, load_in_4bit=True)
            model.gradient_checkpointing_enable()
        """
        from .modeling_utils import PreTrainedModel

        def forward(self, x):
            if self.gradient_checkpointing and self.training:
                return self._gradient_checkpointing_func(self.layer, x)
            return self.config.torch_dtype
        ''',
        """\
        import argparse
        from transformers import AutoModelForCausalLM

        parser = argparse.ArgumentParser()
        parser.add_argument("--gradient_checkpointing", action="store_true")
        parser.add_argument("--load_in_4bit", action="store_true")
        args = parser.parse_args()
        model = AutoModelForCausalLM.from_pretrained("gpt2")
        print(model.config.torch_dtype, args.gradient_checkpointing)
        """,
        """\
        from transformers import AutoModelForCausalLM

        def load(model, load_in_4bit=False, torch_dtype=None):
            model.gradient_checkpointing = True  # the per-module flag keeps its name
            return model, load_in_4bit, torch_dtype
        """,
    ],
    ids=["library-module", "argparse-script", "own-parameters"],
)
def test_files_that_only_mention_the_names_are_not_rendered(source, monkeypatch):
    source = textwrap.dedent(source)

    def no_libcst(*args, **kwargs):
        raise AssertionError("libcst parsed a file no rule acts on")

    monkeypatch.setattr(cst, "parse_module", no_libcst)
    for add_todos in (False, True):
        result = transform(source, Settings(add_todos=add_todos), rules=list(MINE))
        assert result.source == source and not result.findings


# ------------------------------------------------------------------------------------------------ text safety
def test_crlf_preserved():
    source = (
        "import torch\r\nfrom transformers import AutoModelForCausalLM\r\n\r\n"
        'model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float16, load_in_8bit=True)\r\n'
        "model.gradient_checkpointing_enable()\r\n"
    )
    result = transform(source, Settings(), rules=list(MINE))
    assert result.error is None
    assert "\n" not in result.source.replace("\r\n", "")
    assert "dtype=torch.float16" in result.source and "torch_dtype" not in result.source
    assert "quantization_config=BitsAndBytesConfig(load_in_8bit=True)" in result.source
    assert "model.activation_checkpointing_enable()" in result.source


def test_unchanged_file_is_returned_as_is():
    source = "if True:\r\n\tfrom transformers import AutoModel\r\n\tm = AutoModel.from_pretrained('x')\r\n"
    result = transform(source, Settings(), rules=list(MINE))
    assert result.source is source or result.source == source
    assert not result.findings


MESSY = """\
import argparse

import torch
import transformers as tf
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM as CausalLM, HfArgumentParser, TrainingArguments
from trl import SFTConfig, SFTTrainer


def build(model_args, training_args: TrainingArguments):
    model_kwargs = dict(
        torch_dtype=torch.bfloat16 if training_args.bf16 else "auto",
        load_in_4bit=model_args.load_in_4bit,
        bnb_4bit_quant_type="nf4",
        device_map="auto",
    )
    if model_kwargs["torch_dtype"] == "auto":
        print("checkpoint dtype")
    model = CausalLM.from_pretrained(model_args.model_name_or_path, **model_kwargs)
    if training_args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=training_args.gradient_checkpointing_kwargs)
    model = get_peft_model(model, LoraConfig(r=8))
    ref = tf.AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, torch_dtype="auto").eval()
    return model, ref


def main():
    parser = HfArgumentParser((argparse.Namespace, SFTConfig))
    model_args, training_args = parser.parse_args_into_dataclasses()
    training_args.gradient_checkpointing_kwargs = {"use_reentrant": False}
    model, ref = build(model_args, training_args)
    print(model.is_gradient_checkpointing, "torch_dtype", getattr(ref.config, "torch_dtype"))
    SFTTrainer(model=model, args=training_args).train()
"""

MESSY_EXPECTED = """\
import argparse

import torch
import transformers as tf
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM as CausalLM, BitsAndBytesConfig, HfArgumentParser, TrainingArguments
from trl import SFTConfig, SFTTrainer


def build(model_args, training_args: TrainingArguments):
    model_kwargs = dict(
        dtype=torch.bfloat16 if training_args.bf16 else "auto",
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=model_args.load_in_4bit,
            bnb_4bit_quant_type="nf4",
        ) if model_args.load_in_4bit else None,
        device_map="auto",
    )
    if model_kwargs["dtype"] == "auto":
        print("checkpoint dtype")
    model = CausalLM.from_pretrained(model_args.model_name_or_path, **model_kwargs)
    if training_args.activation_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=training_args.activation_checkpointing_kwargs)
    model = get_peft_model(model, LoraConfig(r=8))
    ref = tf.AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype="auto").eval()
    return model, ref


def main():
    parser = HfArgumentParser((argparse.Namespace, SFTConfig))
    model_args, training_args = parser.parse_args_into_dataclasses()
    training_args.activation_checkpointing_kwargs = {"use_reentrant": False}
    model, ref = build(model_args, training_args)
    print(model.is_activation_checkpointing, "torch_dtype", getattr(ref.config, "torch_dtype"))
    SFTTrainer(model=model, args=training_args).train()
"""


def test_three_rules_on_one_messy_script():
    # `model, ref = build(...)` in main(): build() returns (a PeftModel, a transformers model), so the property read
    # there is a model's too (what a local function returns is followed, also through a returned tuple).
    result = transform(MESSY, Settings(), rules=list(MINE))
    assert result.error is None
    assert result.source == MESSY_EXPECTED
    counts = result.counts()
    assert counts == {
        "transformers-torch-dtype": {"rewrites": 3, "todos": 0, "diagnostics": 0},
        "transformers-load-in-kbit": {"rewrites": 1, "todos": 0, "diagnostics": 0},
        "transformers-activation-checkpointing": {"rewrites": 6, "todos": 0, "diagnostics": 0},
    }
    assert not result.diagnostics
    again = transform(result.source, Settings(), rules=list(MINE))
    assert again.source == result.source
    assert [(f.rule, f.message) for f in again.findings] == [(f.rule, f.message) for f in result.diagnostics]


def test_gates_on_the_messy_script():
    on_455 = transform(MESSY, Settings(targets={"transformers": "4.55"}), rules=list(MINE))
    assert set(on_455.counts()) == {"transformers-load-in-kbit"}
    on_522 = transform(MESSY, Settings(targets={"transformers": "5.22"}), rules=list(MINE))
    assert set(on_522.counts()) == {
        "transformers-torch-dtype",
        "transformers-load-in-kbit",
    }


# ------------------------------------------------------------------------------------------------ real code
def _exec(source: str, **namespace):
    namespace.setdefault("__name__", "rewritten")
    exec(compile(source, "<rewritten>", "exec"), namespace)
    return namespace


@pytest.fixture
def rewritten():
    def rewrite(source: str) -> str:
        source = textwrap.dedent(source)
        result = transform(source, Settings(), rules=list(MINE))
        assert result.error is None and result.findings, result
        return result.source

    return rewrite


def test_rewritten_loading_and_checkpointing_run_without_deprecations(tiny_model_path, rewritten, caplog):
    transformers = pytest.importorskip("transformers")
    from packaging.version import Version

    if Version(transformers.__version__) < Version("5.23"):
        pytest.skip("needs transformers >= 5.23 (activation_checkpointing_*)")
    source = rewritten(
        """\
        import torch
        from transformers import AutoModelForCausalLM, TrainingArguments

        kwargs = {"torch_dtype": torch.bfloat16}
        model = AutoModelForCausalLM.from_pretrained(PATH, **kwargs)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        enabled = model.is_gradient_checkpointing
        model.gradient_checkpointing_disable()
        disabled = not model.is_gradient_checkpointing
        args = TrainingArguments(output_dir=OUT, gradient_checkpointing=True, report_to=[])
        """
    )
    assert "torch_dtype" not in source and "gradient_checkpointing" not in source
    transformers.logging.set_verbosity_warning()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        ns = _exec(source, PATH=tiny_model_path, OUT="/tmp/unused-out")
    transformers.logging.set_verbosity_error()
    import torch

    assert ns["model"].dtype == torch.bfloat16
    assert ns["enabled"] and ns["disabled"]
    assert ns["args"].activation_checkpointing is True
    assert "deprecated" not in caplog.text


def test_rewritten_kbit_loading_runs_where_the_old_keyword_fails(tiny_model_path, rewritten):
    transformers = pytest.importorskip("transformers")
    from packaging.version import Version

    if Version(transformers.__version__) < Version("5.0"):
        pytest.skip("the old keywords only fail on transformers >= 5")
    old = textwrap.dedent(
        """\
        from transformers import AutoModelForCausalLM

        def load(path, quantize):
            return AutoModelForCausalLM.from_pretrained(path, load_in_8bit=quantize)

        model = load(PATH, QUANTIZE)
        """
    )
    with pytest.raises(TypeError, match="load_in_8bit"):
        _exec(old, PATH=tiny_model_path, QUANTIZE=False)
    new = rewritten(old)
    assert "BitsAndBytesConfig(load_in_8bit=quantize) if quantize else None" in new
    model = _exec(new, PATH=tiny_model_path, QUANTIZE=False)["model"]
    assert not getattr(model, "is_loaded_in_8bit", False)


def test_rewritten_4bit_loading_quantizes(tiny_model_path, rewritten):
    pytest.importorskip("transformers")
    pytest.importorskip("bitsandbytes")
    from compat import versions

    if not versions.is_new("bnb_cpu_kbit"):
        pytest.skip("bitsandbytes 4-bit on the CPU needs transformers >= 4.53 and bitsandbytes >= 0.47")
    new = rewritten(
        """\
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            PATH,
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        """
    )
    model = _exec(new, PATH=tiny_model_path)["model"]
    assert model.is_loaded_in_4bit
    assert model.config.quantization_config.bnb_4bit_quant_type == "nf4"


def test_old_field_written_after_construction_is_ignored_so_the_rewrite_matters():
    """MIGRATION.md claim: on 5.23+ a write to the old field after __post_init__ (or dataclasses.replace with it) does
    not reach the Trainer, which reads the new field; the rewritten spelling does."""
    transformers = pytest.importorskip("transformers")
    from packaging.version import Version

    if Version(transformers.__version__) < Version("5.23"):
        pytest.skip("needs transformers >= 5.23")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        args = transformers.TrainingArguments(output_dir="/tmp/unused-out", report_to=[])
        args.gradient_checkpointing = True
        assert args.activation_checkpointing is False
        on = transformers.TrainingArguments(output_dir="/tmp/unused-out", report_to=[], activation_checkpointing=True)
        assert dataclasses.replace(on, gradient_checkpointing=False).activation_checkpointing is True
    fixed = run(
        """\
        import dataclasses
        from transformers import TrainingArguments

        args = TrainingArguments(output_dir="out")
        args.gradient_checkpointing = True
        off = dataclasses.replace(args, gradient_checkpointing=False)
        """,
        TransformersActivationCheckpointing,
    ).source
    assert "args.activation_checkpointing = True" in fixed
    assert "dataclasses.replace(args, activation_checkpointing=False)" in fixed


def test_subclass_overrides_on_5_23(tiny_model_path, rewritten):
    """A user subclass overriding the old method: transformers >= 5.23's activation_checkpointing_enable calls the
    override with every_n_layers=/offload=. With **kwargs in the override the rewritten call works and reaches it
    (fixture local_subclass_kwargs_override); without, it raises TypeError, so the rule leaves a TODO there instead
    (fixture local_subclass)."""
    transformers = pytest.importorskip("transformers")
    from packaging.version import Version

    if Version(transformers.__version__) < Version("5.23") or not hasattr(transformers, "Qwen3ForCausalLM"):
        pytest.skip("needs transformers >= 5.23")
    template = """\
        from transformers import Qwen3ForCausalLM

        class Tracked(Qwen3ForCausalLM):
            calls = []

            def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None{extra}):
                self.calls.append(gradient_checkpointing_kwargs)
                super().gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

        model = Tracked.from_pretrained(PATH)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={{"use_reentrant": False}})
        """
    source = rewritten(template.format(extra=", **kwargs"))
    assert "model.activation_checkpointing_enable(activation_checkpointing_kwargs=" in source
    assert "def gradient_checkpointing_enable(self" in source and "super().gradient_checkpointing_enable(" in source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ns = _exec(source, PATH=tiny_model_path)
    assert ns["Tracked"].calls == [{"use_reentrant": False}]
    assert ns["model"].is_activation_checkpointing

    old_style = textwrap.dedent(template.format(extra=""))
    result = transform(old_style, Settings(), rules=[TransformersActivationCheckpointing])
    assert [f.kind for f in result.findings] == ["todo"] and "lacks **kwargs" in result.source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ns = _exec(old_style, PATH=tiny_model_path)  # the old call still works
        with pytest.raises(TypeError, match="every_n_layers"):
            ns["model"].activation_checkpointing_enable()  # what a blind rename would have called


def test_skip_comment_keeps_the_statement_and_adds_no_import():
    source = textwrap.dedent(
        """\
        def load(name):
            from transformers import AutoModelForCausalLM

            a = AutoModelForCausalLM.from_pretrained(name, load_in_8bit=True)  # compat: skip
            b = AutoModelForCausalLM.from_pretrained(name, load_in_4bit=True)
            return a, b
        """
    )
    result = transform(source, Settings(), rules=[TransformersLoadInKbit])
    assert result.source.count("from transformers import BitsAndBytesConfig") == 1
    assert "from_pretrained(name, load_in_8bit=True)  # compat: skip" in result.source
    assert "quantization_config=BitsAndBytesConfig(load_in_4bit=True)" in result.source
    assert len(result.findings) == 1
    only_skipped = source.replace("    b = AutoModelForCausalLM.from_pretrained(name, load_in_4bit=True)\n", "")
    assert transform(only_skipped, Settings(), rules=[TransformersLoadInKbit]).source == only_skipped
