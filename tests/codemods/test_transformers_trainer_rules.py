"""The Trainer-family machinery (codemods.rules._trainers) beyond the fixtures: another family and another field
table on the same API (what the TRL rules build on), project-wide subclasses, and the TODO comments of the
transformers Trainer-API rules under --add-todos."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemods import hf, rules_by_id
from codemods.engine import transform
from codemods.project import Project
from codemods.rule import MAX_TODO, Rule, Settings
from codemods.rules._trainers import ConfigFields, Family, ProcessingClass, flag, renamed

FIXTURES = Path(__file__).parent / "fixtures"
TRAINER_RULES = (
    "transformers-processing-class", "transformers-training-args", "transformers-trainer-subclass-signatures",
    "transformers-use-auth-token", "transformers-apply-chat-template", "transformers-report-to",
    "transformers-tokenizer-type", "transformers-flash-attention-2", "transformers-removed-imports",
    "transformers-tokenizer-methods", "transformers-private-attributes", "transformers-hf-argparser-collision",
    "transformers-load-in-kbit",
)  # fmt: skip

OTHER = Family("TRL", "trl.SFTTrainer", hf.is_trl_trainer, "processing_class_kwarg")


class OtherFamily(Rule):
    """processing_class for TRL's trainers, and a TRL-config-only field table (the shape of the TRL rules)."""

    id = "test-other-family"
    summary = "test"
    triggers = ("tokenizer", "max_seq_length", "packing")
    gates = (OTHER.gate,)

    def check(self, ctx):
        ProcessingClass(ctx, OTHER).run()
        fields = (renamed("max_seq_length", "max_length"), flag("packing", "packing_strategy", '"bfd"', '"none"'))
        ConfigFields(ctx, fields, lambda qname: qname == "trl.SFTConfig").run()


def run(source: str, *rules, **settings) -> tuple[str, list]:
    result = transform(source, Settings(**settings), rules=list(rules))
    assert result.error is None, result.error
    again = transform(result.source, Settings(**settings), rules=list(rules))
    assert again.source == result.source and not [f for f in again.findings if f.kind != "diagnostic"]
    return result.source, result.findings


def test_another_family_and_field_table_on_the_same_machinery():
    src = (
        "from transformers import Trainer, TrainingArguments\n"
        "from trl import DPOTrainer, SFTConfig, SFTTrainer\n\n\n"
        "class MyDPO(DPOTrainer):\n"
        "    def log_pad(self):\n"
        "        return self.tokenizer.pad_token_id\n\n\n"
        "cfg = SFTConfig(output_dir='o', max_seq_length=512, packing=args.pack)\n"
        "plain = TrainingArguments(output_dir='o', max_seq_length=512)\n"
        "a = SFTTrainer(model=m, args=cfg, tokenizer=tok)\n"
        "b = MyDPO(model=m, tokenizer=tok)\n"
        "c = Trainer(model=m, tokenizer=tok)\n"
    )
    out, _ = run(src, OtherFamily)
    assert "SFTTrainer(model=m, args=cfg, processing_class=tok)" in out
    assert "MyDPO(model=m, processing_class=tok)" in out and "self.processing_class.pad_token_id" in out
    assert "Trainer(model=m, tokenizer=tok)" in out  # transformers' Trainer: not this family
    assert 'SFTConfig(output_dir=\'o\', max_length=512, packing_strategy="bfd" if args.pack else "none")' in out
    assert "TrainingArguments(output_dir='o', max_seq_length=512)" in out  # not a config this table applies to


def test_transformers_family_leaves_trl_trainers_to_their_rule():
    src = "from trl import SFTTrainer\nt = SFTTrainer(model=m, tokenizer=tok)\nprint(t.tokenizer)\n"
    out, findings = run(src, rules_by_id()["transformers-processing-class"])
    assert out == src and not findings


def test_subclass_in_another_file_of_the_project(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "trainers.py").write_text(
        "from transformers import Seq2SeqTrainer\n\n\nclass GenTrainer(Seq2SeqTrainer):\n    pass\n\n\n"
        "class OwnInitTrainer(Seq2SeqTrainer):\n    def __init__(self, model, tokenizer=None, **kw):\n"
        "        super().__init__(model=model, tokenizer=tokenizer, **kw)\n"
    )
    train = tmp_path / "train.py"
    src = (
        "from pkg.trainers import GenTrainer, OwnInitTrainer\n\n"
        "a = GenTrainer(model=m, tokenizer=tok)\nb = OwnInitTrainer(m, tokenizer=tok)\n"
    )
    train.write_text(src)
    rule = rules_by_id()["transformers-processing-class"]
    result = transform(src, Settings(), rules=[rule], filename=str(train), project=Project([str(tmp_path)]))
    assert result.source == src.replace(
        "GenTrainer(model=m, tokenizer=tok)", "GenTrainer(model=m, processing_class=tok)"
    )
    other = (tmp_path / "pkg" / "trainers.py").read_text()
    renamed_init = transform(other, Settings(), rules=[rule], filename=str(tmp_path / "pkg" / "trainers.py"))
    assert "super().__init__(model=model, processing_class=tokenizer, **kw)" in renamed_init.source


def test_training_args_dict_stores_reads_and_replace():
    src = (
        "import dataclasses\nfrom transformers import TrainingArguments\n\n"
        "kw = {'output_dir': 'o'}\nkw['warmup_ratio'] = 0.1\nkw['save_safetensors'] = True\n"
        "args = TrainingArguments(**kw)\n"
        "later = dataclasses.replace(args, evaluation_strategy='epoch', no_cuda=True)\n"
    )
    rule = rules_by_id()["transformers-training-args"]
    out, findings = run(src, rule)
    assert "kw['warmup_steps'] = 0.1" in out and "save_safetensors" not in out  # a pure store goes with its key
    assert "dataclasses.replace(args, eval_strategy='epoch', use_cpu=True)" in out
    assert [(f.line, f.message) for f in findings if "save_safetensors" in f.message] == [
        (6, "save_safetensors= dropped (removed)")
    ]
    assert not [f for f in findings if f.kind == "diagnostic"]
    computed, findings = run(src.replace("= True", "= flag()"), rule)  # a call may have effects: the line stays
    assert "kw['save_safetensors'] = flag()" in computed
    reported = [(f.line, f.message) for f in findings if f.kind == "diagnostic"]
    assert reported == [(6, "save_safetensors= is removed; its value is computed here: drop it by hand")]
    below, _ = run(src, rule, targets={"transformers": "4.57"})  # below 5.0: the ratio and the field stay
    assert "kw['warmup_ratio'] = 0.1" in below and "eval_strategy='epoch'" in below


def test_callback_parameter_renamed_with_its_uses_only_in_event_methods():
    src = (
        "from transformers import TrainerCallback\n\n\n"
        "class Cb(TrainerCallback):\n"
        "    def on_log(self, args, state, control, tokenizer=None, **kwargs):\n"
        "        tokenizer = tokenizer or kwargs.get('tokenizer')\n"
        "        return [tokenizer.decode(i) for i in state.ids]\n\n"
        "    def helper(self, tokenizer):\n"
        "        return tokenizer\n"
    )
    out, _ = run(src, rules_by_id()["transformers-processing-class"])
    assert "def on_log(self, args, state, control, processing_class=None, **kwargs):" in out
    assert "processing_class = processing_class or kwargs.get('processing_class')" in out
    assert "[processing_class.decode(i) for i in state.ids]" in out
    assert "def helper(self, tokenizer):\n        return tokenizer\n" in out


def test_ga_declaration_respects_kwargs_use_and_existing_declarations():
    rule = rules_by_id()["transformers-trainer-subclass-signatures"]
    uses = (
        "from transformers import Trainer\n\n\nclass T(Trainer):\n"
        "    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):\n"
        "        loss = model(**inputs).loss * inputs['n'] / kwargs['num_items_in_batch']\n"
        "        return loss\n"
    )
    assert run(uses, rule)[0] == uses
    declared_in_base = (
        "from transformers import Trainer\n\n\nclass Base(Trainer):\n"
        "    def __init__(self, *a, **k):\n        super().__init__(*a, **k)\n"
        "        self.model_accepts_loss_kwargs = False\n\n\n"
        "class T(Base):\n    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):\n"
        "        return model(**inputs).loss\n"
    )
    assert run(declared_in_base, rule)[0] == declared_in_base


@pytest.mark.parametrize("rule_id", TRAINER_RULES)
def test_todos_under_add_todos_fit_without_cutting(rule_id):
    """Every site a rule reports becomes a TODO comment of at most 120 characters with --add-todos, in one of the
    rule's own wordings (the engine cuts a message that fits in none: none of these may need that)."""
    from test_fixtures import settings_for

    rule = rules_by_id()[rule_id]
    for path in sorted((FIXTURES / rule_id).glob("*.py.in")):
        source = path.read_text(encoding="utf-8")
        base = settings_for(source, rule_id)
        result = transform(source, Settings(targets=base.targets, select=base.select, add_todos=True), rules=[rule])
        for line in result.source.splitlines():
            text = line.strip()
            if text.startswith("# TODO(compat):"):
                assert len(text) <= MAX_TODO and "[...]" not in text, f"{path.name}: {text}"
