import torch

from component.args import TrainArgs
from component.model import MODEL_CLASSES, BloomForCausalLM
from utils import load_dataset_for
from transformers import BitsAndBytesConfig


def main(model_type, path):
    args = TrainArgs(output_dir="out", activation_checkpointing=True)
    base = BloomForCausalLM.from_pretrained(path, dtype=torch.float16, quantization_config=BitsAndBytesConfig(load_in_8bit=True))
    other = MODEL_CLASSES[model_type].from_pretrained(path, dtype=torch.float16)
    base.activation_checkpointing_enable()
    return args, base, other, load_dataset_for(path)
