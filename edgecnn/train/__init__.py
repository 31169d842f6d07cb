"""Training: ``edgecnn train`` (float epochs, QAT, int8 conversion) in a resumable run folder,
on one device or across devices and machines with tf.distribute."""
from .loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
