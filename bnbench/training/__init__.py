"""Training trained transformers: on-the-fly episodes, the training loop, evaluation and checkpoints."""
