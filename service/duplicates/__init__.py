"""Duplicates: exact copies (one content, several locations) and near-duplicates.

* :mod:`~service.duplicates.groups`: the group types, the complete-linkage grouping rule
  and the keeper rule;
* :mod:`~service.duplicates.neighbours`: similar pairs from batched Qdrant queries (never
  a dense matrix);
* :mod:`~service.duplicates.dismissals`: "not duplicates" decisions, kept in the data dir;
* :mod:`~service.duplicates.scan`: a whole scan, the ``duplicate_group`` labels and the
  record of the last scan;
* :mod:`~service.duplicates.moves`: moving the copies not kept into a user's folder.
"""

from service.duplicates.groups import DEFAULT_THRESHOLDS, DuplicateGroup, DuplicateItem
from service.duplicates.scan import DuplicateScan, find_duplicates

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DuplicateGroup",
    "DuplicateItem",
    "DuplicateScan",
    "find_duplicates",
]
