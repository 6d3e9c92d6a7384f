"""The ``autoencoder`` space: a convolutional autoencoder trained on the user's own images.

* :mod:`.config`: the network's shape (:class:`AutoencoderConfig`);
* :mod:`.preprocess`: image -> model input, shared by training and embedding;
* :mod:`.files`: checkpoint versions, the CURRENT / PENDING pointers, their metadata;
* :mod:`.model`: the network and loading a checkpoint's weights (imports torch).

The embedder of the space is :mod:`service.embedders.autoencoder`, beside MobileNet's.
Training (``training/``) writes checkpoints; these modules only read them, so ingest and
search never import the training package. Importing anything but :mod:`.model` does not
import torch.
"""
