"""Training: a generic Accelerate engine (:class:`Trainer`) driving stage-specific :class:`Stage` s."""

from .schema import DataConfig, OptimConfig, PretrainedConfig, TrainConfig
from .stage import Stage

__all__ = ["DataConfig", "OptimConfig", "PretrainedConfig", "Stage", "TrainConfig", "Trainer"]


def __getattr__(name: str):
    # Imported lazily: stages import this package, and the trainer pulls in tensorboard/tqdm.
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    raise AttributeError(name)
