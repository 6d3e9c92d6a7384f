"""Training the autoencoder space: data, augmentation, the loop, checkpoints, re-embedding.

Builds on :mod:`service` only; the core never imports this package.
"""
