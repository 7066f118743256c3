import torch

from component.args import TrainArgs
from component.model import MODEL_CLASSES, BloomForCausalLM
from utils import load_dataset_for


def main(model_type, path):
    args = TrainArgs(output_dir="out", gradient_checkpointing=True)
    base = BloomForCausalLM.from_pretrained(path, torch_dtype=torch.float16, load_in_8bit=True)
    other = MODEL_CLASSES[model_type].from_pretrained(path, torch_dtype=torch.float16)
    base.gradient_checkpointing_enable()
    return args, base, other, load_dataset_for(path)
