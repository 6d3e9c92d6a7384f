"""Words for what a picture shows, from the ImageNet logits of the MobileNet forward pass.

The classes whose softmax probability reaches :data:`MIN_PROBABILITY` (at most
:data:`MAX_CLASSES`) give their names and their WordNet hypernyms (``tabby`` -> ``cat`` ->
``animal``), read from ``imagenet_words.json`` (built by scripts/build_imagenet_words.py),
so a plain word such as "dog" finds every breed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

WORDS_FILE = Path(__file__).with_name("imagenet_words.json")
# Measured on the 20 real foolbox ImageNet photos (docs/labels.md): 0.3 keeps the true class
# of 17 (as many as 0.1-0.2 do) with half the wrong classes of 0.2.
MIN_PROBABILITY = 0.3
MAX_CLASSES = 3


@cache
def class_words() -> list[list[str]]:
    """Per ImageNet class index: its names, then its hypernym words."""
    classes = json.loads(WORDS_FILE.read_text())["classes"]
    return [[*c["names"], *c["hypernyms"]] for c in classes]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def top_classes(probabilities: np.ndarray, min_probability: float = MIN_PROBABILITY,
                max_classes: int = MAX_CLASSES) -> list[int]:
    """The most probable classes of one image, best first, down to ``min_probability``."""
    order = np.argsort(-probabilities)[:max_classes]
    return [int(i) for i in order if probabilities[i] >= min_probability]


def labels_for(logits: np.ndarray) -> list[list[str]]:
    """The ``labels`` payload of each image in a batch of logits (empty when unsure)."""
    words = class_words()
    labels = []
    for row in softmax(np.asarray(logits, np.float64)):
        found: dict[str, None] = {}
        for index in top_classes(row):
            found.update(dict.fromkeys(words[index]))
        labels.append(list(found))
    return labels
