from dataclasses import dataclass

from trl import SFTConfig


@dataclass
class TrainArgs(SFTConfig):
    lora_r: int = 8
