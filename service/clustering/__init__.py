"""Density clustering of embeddings with cosine distance, pure numpy / scikit-learn / scipy.

Vectors go in, labels come out (``0..k-1`` numbered by cluster size, largest first; ``-1``
for noise). No store, no CLI (:mod:`service.cluster_labels` applies labels to a
collection).

* :mod:`.vectors`: the entry point, :func:`~.vectors.cluster_vectors`;
* :mod:`.dbscan`: DBSCAN in bounded memory, and HDBSCAN;
* :mod:`.eps`: choosing eps from the data (``--eps auto``);
* :mod:`.results`: what a run returns, and label helpers.
"""
