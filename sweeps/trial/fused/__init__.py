"""Fused trials: a group of a sweep's trials trained as one batched model, each member still its own
trial.

Plain PyTorch, no Ray: the layers, the model built from each member's solo model, a
per-member optimizer, per-member diagnostics and the group's training loop. Only
trainable.py talks to Ray Tune.
"""
