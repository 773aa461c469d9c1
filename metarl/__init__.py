"""metarl: meta-learning in PyTorch -- few-shot learning and meta-RL on one engine."""

__version__ = "0.1.0"
