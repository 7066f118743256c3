"""Tiny local stand-ins for what TRL's example scripts download: a causal LM, its tokenizer and small datasets.

Everything is built from a config and written to a directory, so `--model_name_or_path DIR` and
`--dataset_name DIR` of the scripts' own CLI reach it (`datasets.load_dataset(DIR)` reads a directory of json
files, one file per split). The tokenizer is byte-level (every byte is a token, no merges), so any text tokenizes
and there is nothing to train; it has no chat template, like the base models the scripts were written for.

`python tests/e2e/tiny_stack.py OUT` writes the model and every dataset under OUT (to run a script by hand).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Llama: the architecture every TRL script of 2024 ran on; 4 heads of 8, two layers (~30k parameters).
MODEL = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    tie_word_embeddings=False,
)
EOS, PAD = "<|endoftext|>", "<pad>"


def build_tokenizer(path: str | Path):
    """A byte-level tokenizer with eos and pad tokens and no chat template, saved to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(byte_chars))}
    vocab[EOS] = len(vocab)
    vocab[PAD] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=PAD)
    tokenizer.save_pretrained(str(path))
    return tokenizer


def build_model(path: str | Path) -> Path:
    """A float32 tiny Llama and its tokenizer in `path` (float32: the scripts load without a dtype)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    path = Path(path)
    tokenizer = build_tokenizer(path)
    # Embeddings padded to a multiple of 64, as most released checkpoints have: the KTO scripts add ChatML tokens
    # and resize only the policy, so the reference model relies on the spare rows.
    vocab_size = -(-len(tokenizer) // 64) * 64
    config = LlamaConfig(
        vocab_size=vocab_size,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **MODEL,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(path))
    return path


_QUESTIONS = [
    "what is two plus two",
    "name a colour",
    "say hi",
    "count to three",
    "what is ice",
    "pick a fruit",
    "spell cat",
    "what is up",
]
_GOOD = ["four", "blue", "hi there", "one two three", "frozen water", "an apple", "c a t", "the sky"]
_BAD = ["five", "loud", "no", "three two", "hot", "a rock", "dog", "down"]


def _rows(fmt: str, i: int) -> dict:
    q, good, bad = _QUESTIONS[i % 8], _GOOD[i % 8], _BAD[i % 8]

    def chat(answer):
        return [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]

    if fmt == "text":  # language modelling (SFT's dataset_text_field="text")
        return {"text": f"Q: {q}? A: {good}."}
    if fmt == "preference_text":  # Anthropic/hh-rlhf: whole dialogues as strings
        return {"chosen": f"\n\nHuman: {q}?\n\nAssistant: {good}", "rejected": f"\n\nHuman: {q}?\n\nAssistant: {bad}"}
    if fmt == "preference_prompt_chat":  # trl-internal-testing/hh-rlhf-trl-style: prompt string, chosen/rejected chats
        return {"prompt": q, "chosen": chat(good), "rejected": chat(bad)}
    if fmt == "preference_chat":  # trl-lib/ultrafeedback_binarized: chosen/rejected chats, implicit prompt
        return {"chosen": chat(good), "rejected": chat(bad)}
    if fmt == "preference_explicit_chat":  # explicit prompt, chat format (trl-lib style for 0.12)
        return {
            "prompt": [{"role": "user", "content": q}],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}],
        }
    if fmt == "unpaired_text":  # KTO: prompt, completion, label
        return {"prompt": f"Q: {q}? A:", "completion": f" {good if i % 2 == 0 else bad}", "label": i % 2 == 0}
    if fmt == "unpaired_chat":  # trl-lib/kto-mix-14k: chat prompt/completion, bool label
        answer = good if i % 2 == 0 else bad
        return {
            "prompt": [{"role": "user", "content": q}],
            "completion": [{"role": "assistant", "content": answer}],
            "label": i % 2 == 0,
        }
    raise ValueError(f"unknown dataset format {fmt!r}")


FORMATS = (
    "text",
    "preference_text",
    "preference_prompt_chat",
    "preference_chat",
    "preference_explicit_chat",
    "unpaired_text",
    "unpaired_chat",
)


def build_dataset(path: str | Path, fmt: str, train_rows: int = 8, test_rows: int = 4) -> Path:
    """A directory with train.json and test.json (json lines) in the format `fmt`; `load_dataset(path)` reads it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", train_rows, 0), ("test", test_rows, 3)):
        with open(path / f"{split}.json", "w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps(_rows(fmt, i + offset)) + "\n")
    return path


def build_all(root: str | Path) -> dict[str, Path]:
    root = Path(root)
    out = {"model": build_model(root / "model")}
    for fmt in FORMATS:
        out[fmt] = build_dataset(root / "data" / fmt, fmt)
    return out


if __name__ == "__main__":
    for name, where in build_all(sys.argv[1] if len(sys.argv) > 1 else "tiny").items():
        print(f"{name}: {where}")
