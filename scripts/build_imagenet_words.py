"""Build service/embedders/imagenet_words.json: words for each ImageNet-1k class.

``python scripts/build_imagenet_words.py [--wordnet /usr/share/wordnet] [--out PATH]``

Needs WordNet 3.0 (``apt-get install wordnet-base``) and timm (its ImageNet synset list);
the app itself reads only the generated file. For class ``i`` (timm's order, the order of
the MobileNet head's logits) it stores:

* ``names``: the synset's lemmas (``golden retriever``);
* ``hypernyms``: the words of every synset above it in WordNet's noun hierarchy (``@`` and
  ``@i`` pointers of ``data.noun``; an ImageNet wnid ``nXXXXXXXX`` is the synset at byte
  offset XXXXXXXX), e.g. ``retriever``, ``sporting dog``, ``dog``, ``canine``, ``carnivore``,
  ``mammal``, ``animal``. Synsets near the root (``entity``, ``physical entity``, ``object``,
  ``whole``...) and a short list of abstract words describe everything and are left out;
  of a hypernym synset's lemmas only the first and the one-word ones are kept (``dog`` and
  ``domestic dog`` but not ``Canis familiaris``).

Words are lowercase with spaces, so a label filter is one keyword match.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "service" / "embedders" / "imagenet_words.json"

# Synsets this close to WordNet's root ("entity" = depth 0) say nothing about a picture.
MIN_DEPTH = 4
# Abstract words deeper down that still match almost everything of their kind.
STOP_WORDS = frozenset({
    "artifact", "artefact", "instrumentality", "instrumentation", "living thing",
    "animate thing", "organism", "being", "causal agent", "cause", "causal agency", "matter",
    "unit", "physical object", "part", "portion", "component", "component part",
    "constituent", "abstraction", "abstract entity", "attribute", "relation", "group",
    "grouping", "commodity", "trade good", "good", "thing", "content", "substance",
    "material", "stuff", "solid", "fluid", "liquid", "psychological feature", "event",
    "act", "deed", "human action", "human activity", "measure", "quantity", "amount",
    "natural object", "geological formation", "formation", "shape", "form", "covering",
    "structure", "construction", "device", "container", "implement", "equipment",
    "system", "conveyance", "transport", "location", "region", "creation", "product",
    "production", "food", "nutrient", "foodstuff", "food product", "plant part",
    "plant structure", "natural elevation", "elevation", "person", "individual",
    "someone", "somebody", "mortal", "soul", "adult", "grownup",
})


def read_wordnet(path: Path) -> dict[int, tuple[list[str], list[int]]]:
    """``data.noun`` as ``offset -> (lemmas, hypernym offsets)``."""
    synsets: dict[int, tuple[list[str], list[int]]] = {}
    with open(path / "data.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith(" "):
                continue  # licence header
            fields = line.split(" | ", 1)[0].split()
            offset, count = int(fields[0]), int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(count)]
            pos = 4 + 2 * count
            pointers = int(fields[pos])
            hypernyms = []
            for i in range(pointers):
                symbol, target = fields[pos + 1 + 4 * i], fields[pos + 2 + 4 * i]
                if symbol in ("@", "@i"):
                    hypernyms.append(int(target))
            synsets[offset] = (lemmas, hypernyms)
    return synsets


def word(lemma: str) -> str:
    # strip WordNet's adjective markers such as "(a)" and use spaces
    return lemma.split("(")[0].replace("_", " ").strip().lower()


def depths(synsets: dict[int, tuple[list[str], list[int]]]) -> dict[int, int]:
    """Shortest distance of each synset from a root (a synset with no hypernym)."""
    memo: dict[int, int] = {}

    def depth(offset: int) -> int:
        if offset not in memo:
            memo[offset] = 0  # guard against cycles (there are none in WordNet 3.0)
            parents = synsets[offset][1]
            memo[offset] = 1 + min(depth(p) for p in parents) if parents else 0
        return memo[offset]

    for offset in synsets:
        depth(offset)
    return memo


def ancestors(offset: int, synsets: dict[int, tuple[list[str], list[int]]]) -> Iterator[int]:
    """Every synset above ``offset`` (breadth first, each once)."""
    seen: set[int] = set()
    frontier = list(synsets[offset][1])
    while frontier:
        nxt = []
        for parent in frontier:
            if parent not in seen:
                seen.add(parent)
                yield parent
                nxt.extend(synsets[parent][1])
        frontier = nxt


def class_words(wnid: str, synsets: dict, depth_of: dict[int, int]) -> dict[str, list[str]]:
    offset = int(wnid[1:])
    names = list(dict.fromkeys(word(lemma) for lemma in synsets[offset][0]))
    hypernyms: list[str] = []
    for parent in ancestors(offset, synsets):
        if depth_of[parent] < MIN_DEPTH:
            continue
        lemmas = [word(lemma) for lemma in synsets[parent][0]]
        kept = [lemmas[0], *(w for w in lemmas[1:] if " " not in w)]
        hypernyms.extend(w for w in kept if w not in STOP_WORDS)
    hypernyms = [w for w in dict.fromkeys(hypernyms) if w not in names]
    return {"names": names, "hypernyms": hypernyms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from timm.data import ImageNetInfo

    wnids = ImageNetInfo().label_names()
    if len(wnids) != 1000:
        raise SystemExit(f"expected 1000 ImageNet-1k synsets from timm, got {len(wnids)}")
    synsets = read_wordnet(args.wordnet)
    depth_of = depths(synsets)
    classes = [class_words(wnid, synsets, depth_of) for wnid in wnids]
    lines = ",\n".join(json.dumps(c, ensure_ascii=False) for c in classes)
    args.out.write_text(
        '{"source": "WordNet 3.0 hypernyms of the ImageNet-1k synsets '
        '(scripts/build_imagenet_words.py)",\n"classes": [\n' + lines + "\n]}\n"
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({len(classes)} classes, {size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
