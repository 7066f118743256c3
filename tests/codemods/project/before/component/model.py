import transformers
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM


class BloomForCausalLM(transformers.BloomForCausalLM):
    """The project's Bloom, with its own generation defaults."""

    def generation_defaults(self):
        return {"max_new_tokens": 128}


MODEL_CLASSES = {"bloom": BloomForCausalLM, "causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}
