"""compat.trl_helpers: TRL's removed helpers with their old contracts, on real tiny models and tokenizers.

get_kbit_device_map, setup_chat_format, conversations_formatting_function and the TRL 0.8 script-argument dataclasses
need only transformers (every env of the matrix); trl_config needs trl (the e2e and trl-* envs).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from compat import trl_helpers  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def _tokenizer(path=None):
    """A byte-level tokenizer (each byte a token) with eos and pad and no chat template, like a base model's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({"<|endoftext|>": len(vocab), "<pad>": len(vocab) + 1})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<pad>")
    if path is not None:
        tok.save_pretrained(str(path))
    return tok


def _model(vocab_size: int):
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config)


def _caught(func, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func(*args, **kwargs)
    return result, [w for w in caught if issubclass(w.category, FutureWarning) and "compat" in str(w.message)]


def test_import_compat_trl_helpers_loads_no_ml_library():
    code = (
        "import sys, compat, compat.trl_helpers as h; h.SIMPLE_CHAT_TEMPLATE; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'accelerate') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_get_kbit_device_map_is_trls_on_this_machine_and_warns_at_the_caller():
    from accelerate import PartialState
    from transformers.utils import is_torch_xpu_available

    result, caught = _caught(trl_helpers.get_kbit_device_map)
    accelerator = torch.cuda.is_available() or is_torch_xpu_available()
    assert result == ({"": PartialState().local_process_index} if accelerator else None)
    assert len(caught) == 1 and caught[0].filename == __file__, [(w.filename, str(w.message)) for w in caught]
    assert "device_map" in str(caught[0].message)


def test_get_kbit_device_map_feeds_from_pretrained(tiny_model_path):
    # The TRL script idiom: device_map=get_kbit_device_map() if quantization_config else None.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        device_map = trl_helpers.get_kbit_device_map()
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_path, device_map=device_map)
    expected = "cpu" if device_map is None else f"cuda:{device_map['']}"
    assert str(next(model.parameters()).device) == expected


def test_setup_chat_format_keeps_the_two_tuple_contract_and_trains():
    tokenizer, model = _tokenizer(), _model(vocab_size=300)
    old_len = len(tokenizer)
    (new_model, new_tokenizer), caught = _caught(trl_helpers.setup_chat_format, model, tokenizer)
    assert new_model is model and new_tokenizer is tokenizer
    assert len(caught) == 1 and caught[0].filename == __file__
    assert "clone_chat_template" in str(caught[0].message)

    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
    )
    assert len(tokenizer) == old_len + 2
    text = tokenizer.apply_chat_template(MESSAGES[:1], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(tokenizer.apply_chat_template(MESSAGES, tokenize=False))["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 2 and ids.count(tokenizer.eos_token_id) == 2  # one id each

    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer.vocab) == old_len + 2
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id

    # The new token ids go through the resized model: one real training step on a ChatML conversation.
    batch = torch.tensor([ids])
    before = model.get_input_embeddings().weight[tokenizer.eos_token_id].detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.get_input_embeddings().weight[tokenizer.eos_token_id])


def test_setup_chat_format_resize_to_multiple_of():
    tokenizer, model = _tokenizer(), _model(vocab_size=258)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trl_helpers.setup_chat_format(model, tokenizer, resize_to_multiple_of=64)
    assert model.get_input_embeddings().weight.shape[0] == 320  # 260 tokens rounded up


def test_setup_chat_format_refuses_what_trl_refused():
    tokenizer, model = _tokenizer(), _model(vocab_size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(ValueError, match="Format zephyr not available"):
            trl_helpers.setup_chat_format(model, tokenizer, format="zephyr")
        tokenizer.chat_template = "{{ messages }}"
        with pytest.raises(ValueError, match="Chat template is already added"):
            trl_helpers.setup_chat_format(model, tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == 300  # nothing touched


def test_setup_chat_format_survives_save_and_reload(tmp_path):
    tokenizer, model = _tokenizer(), _model(vocab_size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trl_helpers.setup_chat_format(model, tokenizer)
    tokenizer.save_pretrained(str(tmp_path))
    model.save_pretrained(str(tmp_path))
    again = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert again.apply_chat_template(MESSAGES, tokenize=False) == tokenizer.apply_chat_template(
        MESSAGES, tokenize=False
    )
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert reloaded.config.eos_token_id == again.eos_token_id


def test_conversations_formatting_function_one_and_a_batch():
    tokenizer = _tokenizer()
    tokenizer.chat_template = trl_helpers.SIMPLE_CHAT_TEMPLATE
    format_fn, caught = _caught(trl_helpers.conversations_formatting_function, tokenizer, "messages")
    assert len(caught) == 1 and caught[0].filename == __file__
    one = format_fn({"messages": MESSAGES})
    assert one == "User: hi\n\nAssistant: hello\n\n"
    assert format_fn({"messages": [MESSAGES, MESSAGES[:1]]}) == [one, "User: hi\n\n"]


def test_simple_chat_template_is_trls():
    # TRL 0.11-1.0's SIMPLE_CHAT_TEMPLATE, rendered with a generation prompt.
    tokenizer = _tokenizer()
    tokenizer.chat_template = trl_helpers.SIMPLE_CHAT_TEMPLATE
    text = tokenizer.apply_chat_template(MESSAGES[:1], tokenize=False, add_generation_prompt=True)
    assert text == "User: hi\n\nAssistant:"


@pytest.mark.parametrize("cls", [trl_helpers.SftScriptArguments, trl_helpers.DpoScriptArguments])
def test_trl_08_script_arguments_parse_their_old_flags(cls):
    parser = transformers.HfArgumentParser((cls, transformers.TrainingArguments))
    flags = ["--output_dir", "out", "--dataset_name", "data"]
    flags += ["--max_seq_length", "64", "--packing"] if cls is trl_helpers.SftScriptArguments else ["--beta", "0.2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        script_args, training_args = parser.parse_args_into_dataclasses(args=flags)
    assert script_args.dataset_name == "data"
    if cls is trl_helpers.SftScriptArguments:
        assert (script_args.max_seq_length, script_args.packing, script_args.dataset_train_name) == (64, True, "train")
    else:
        assert (script_args.beta, script_args.max_prompt_length, script_args.generate_during_eval) == (0.2, 128, False)
    assert any("ScriptArguments was removed from TRL" in str(w.message) for w in caught)
    assert "config" not in {f.name for f in dataclasses.fields(cls)}  # today's TrlParser reserves --config


# --- trl_config: needs trl -----------------------------------------------------------------------------------------


@pytest.fixture
def trl():
    return pytest.importorskip("trl", reason="trl is not installed (the e2e tox env runs these)")


def test_trl_config_from_training_arguments(trl, tmp_path):
    args = transformers.TrainingArguments(
        str(tmp_path), learning_rate=3e-4, max_steps=2, hub_token="secret", report_to="none", use_cpu=True
    )
    before = args.to_dict()
    config = trl_helpers.trl_config(trl.SFTConfig, args, max_length=64, packing=True, dataset_text_field=None)
    assert type(config) is trl.SFTConfig
    assert (config.learning_rate, config.max_steps, config.output_dir) == (3e-4, 2, str(tmp_path))
    assert (config.max_length, config.packing) == (64, True)
    default = next(f.default for f in dataclasses.fields(trl.SFTConfig) if f.name == "dataset_text_field")
    assert config.dataset_text_field == default  # given as None: the config's default is kept
    assert config.hub_token == "secret"  # to_dict() masks it; TRL's own conversion restores it too
    assert args.to_dict() == before


def test_trl_config_keeps_a_trl_configs_own_tokens(trl, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's own defaults (gradient_checkpointing) on 5.23+
        args = trl.SFTConfig(str(tmp_path), eos_token="<|im_end|>", report_to="none", use_cpu=True, bf16=False)
    config = trl_helpers.trl_config(trl.SFTConfig, args, max_length=32)
    assert (config.eos_token, config.max_length) == ("<|im_end|>", 32)  # to_dict() masks every *_token field


def test_trl_config_refuses_a_field_the_config_lacks(trl, tmp_path):
    args = transformers.TrainingArguments(str(tmp_path), report_to="none")
    with pytest.raises(TypeError, match="DPOConfig has no field max_prompt_length"):
        trl_helpers.trl_config(trl.DPOConfig, args, beta=0.1, max_prompt_length=128)


def test_trl_config_result_trains_an_sft_trainer(trl, tmp_path, tiny_model_path):
    """The rewrite SFTTrainer(args=compat.trl_config(SFTConfig, training_args, max_length=...)) trains."""
    from datasets import Dataset

    tokenizer = _tokenizer()
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    model.resize_token_embeddings(len(tokenizer))
    args = transformers.TrainingArguments(
        str(tmp_path),
        max_steps=2,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=2,
        save_strategy="no",
    )
    data = Dataset.from_dict({"text": [f"Q: {i}? A: {i + 1}." for i in range(8)]})
    config = trl_helpers.trl_config(trl.SFTConfig, args, max_length=16, dataset_text_field="text")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert max(len(ids) for ids in trainer.train_dataset["input_ids"]) <= 16  # max_length reached TRL
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)
