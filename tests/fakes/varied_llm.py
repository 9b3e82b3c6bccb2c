"""A fake LLM whose answers vary from one sample of captions to the next, as a model's do.

The plain fake (fake_llm) names the same few vocabulary facets and values whatever sample it
is shown, so a round loop would agree with itself from its second round on and early stopping
would look free. A model reads each sample differently: what it proposes has a stable core
(what most captions show) and a varying tail (what this sample happens to stress, synonyms,
the captions' own words, a name outside any list). This fake answers in that shape. Each
answer is drawn from a generator seeded by the request, so an identical request gets the
identical answer (a model at temperature 0 with a seed; the call cache works) and a job's
cost is reproducible; a new sample is a new draw.

- dimensions: the vocabulary's facets ranked by how many shown captions mention them, each
  score jittered (log-normal, JITTER); a name given now and then as a synonym ('habitat' for
  background) and now and then one name outside the vocabulary ('size', 'species').
- attributes: per dimension the values the captions show, ranked with the same jitter; a
  value seen once listed only half the time; a value named now and then by the captions' own
  word for it ('meadow' for grass) or as a phrase around it ('dense trees').
- merges: names of one value merged into its vocabulary name, as a model merges synonyms,
  though now and then a second name of one value survives (left for refinement to find).
- refinement (sampled, temperature > 0): a caption that mentions two listed values of a
  dimension, or none, gets wavering answers; a diagnosis says 'redundant' for two names of
  one value, 'missing' for a value of the caption no name covers, else 'hard_case'; a new
  value is valid unless a listed name covers it.
- assignment: each caption's first listed value, matched through names' vocabulary values,
  answered by its number.

Token rule and faults: those of fake_llm.FakeLLM.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from analysis_service.reasoners.base import OTHER, ranked
from tests.fakes import fake_llm as plain
from tests.fakes.vocabulary import VOCABULARY, Facet

JITTER = 0.35  # sigma of the log-normal factor on a score: how differently a sample is read
P_SYNONYM = 0.15  # a proposed dimension named by a synonym
P_NOVEL = 0.25  # a round's last dimension replaced by one outside the vocabulary
P_VARIANT = 0.2  # a value named by the captions' own word for it
P_PHRASE = 0.1  # a value named as a phrase around its name
P_SINGLETON = 0.5  # a value seen in one caption of the sample is listed
P_WAVER = 0.35  # a sampled answer about an ambiguous caption picks another value
P_MERGE_MISS = 0.3  # a merge keeps a second name of one value

_FACETS = {f.name: f for f in VOCABULARY}
SYNONYMS = {
    "background": ("surroundings", "environment", "habitat"),
    "setting": ("location", "scene"),
    "pose": ("posture", "behavior", "action"),
    "color": ("coloration", "main color"),
    "count": ("number", "quantity"),
    "place": ("venue",),
    "weather": ("conditions",),
    "brightness": ("lighting",),
    "time of day": ("daytime",),
}
NOVEL = ("size", "species", "angle", "composition", "focus", "season", "age", "distance")
MODIFIERS = ("dense", "open", "light", "dark", "partly", "bright", "small", "natural")


def _display(name: str) -> str:
    """A facet's name as a dimension name (at most two words)."""
    return name if len(name.split()) <= 2 else name.split()[-1]


_BY_NAME: dict[str, Facet] = {_display(f.name): f for f in VOCABULARY}
_BY_NAME.update({s: _FACETS[name] for name, syns in SYNONYMS.items() for s in syns})


def facet_of(dimension: str) -> Facet | None:
    return _BY_NAME.get(dimension.lower().strip()) or plain._facet(dimension)


def _matches(facet: Facet, text: str) -> list[tuple[str, str]]:
    """(value, the words that said it) for every mention, in order."""
    return [
        (facet.attributes[m.lastindex - 1], m.group(m.lastindex))
        for m in facet.pattern.finditer(text)
        if m.lastindex
    ]


def value_of(facet: Facet | None, name: str) -> str:
    """The vocabulary value a name stands for ('meadow' -> grass), or the name itself."""
    if facet is None or name in facet.attributes:
        return name
    found = _matches(facet, name.lower())
    return found[0][0] if found else name


def _jittered(rng: random.Random, counts: Counter[str]) -> list[str]:
    scored = {k: n * rng.lognormvariate(0, JITTER) for k, n in counts.items()}
    return sorted(scored, key=lambda k: (-scored[k], k))


def _dimensions(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    captions = plain._captions(prompt)
    count = int(re.search(r"Propose (\d+)", prompt).group(1))  # type: ignore[union-attr]
    hits: Counter[str] = Counter()
    for facet in VOCABULARY:
        hits[facet.name] = sum(1 for c in captions if facet.first(c))
    hits = +hits  # facets no caption mentions are not proposed
    names = [_display(n) for n in _jittered(rng, hits)[:count]]
    names = [
        rng.choice(SYNONYMS[n]) if n in SYNONYMS and rng.random() < P_SYNONYM else n for n in names
    ]
    if names and rng.random() < P_NOVEL:
        names[-1] = rng.choice(NOVEL)
    return {"dimensions": list(dict.fromkeys(names)) or ["background"]}


def _values(rng: random.Random, dimension: str, captions: list[str], most: int) -> list[str]:
    facet = facet_of(dimension)
    if facet is None:
        return plain._values_in(dimension, captions, most)
    counts: Counter[str] = Counter()
    words: dict[str, Counter[str]] = {}
    for caption in captions:
        if found := _matches(facet, caption):
            value, word = found[0]
            counts[value] += 1
            words.setdefault(value, Counter())[word] += 1
    named = []
    for value in _jittered(rng, counts):
        if counts[value] == 1 and rng.random() >= P_SINGLETON:
            continue
        draw = rng.random()
        if draw < P_VARIANT:
            value = ranked(words[value], 1)[0][0]
        elif draw < P_VARIANT + P_PHRASE:
            value = f"{rng.choice(MODIFIERS)} {value}"
        named.append(value)
    return list(dict.fromkeys(named))[:most] or ["plain", "varied"]


def _attributes(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    most = int(re.search(r"list up to (\d+)", prompt).group(1))  # type: ignore[union-attr]
    wanted = prompt.split("at most three words:")[1].split("Answer as")[0]
    dims = [line[2:].strip() for line in wanted.splitlines() if line.startswith("- ")]
    captions = plain._captions(prompt)
    return {"attributes": {d: _values(rng, d, captions, most) for d in dims}}


def _merged(
    names: list[str], key: Callable[[str], str], rng: random.Random | None = None
) -> list[str]:
    """One name per key, in order: the key itself when it is among the names, else the
    first; with `rng`, a second name of a key now and then survives (P_MERGE_MISS)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(key(name), []).append(name)
    kept = []
    for k, group in groups.items():
        first = k if k in group else group[0]
        kept.append(first)
        rest = [n for n in group if n != first]
        if rng is not None and rest and rng.random() < P_MERGE_MISS:
            kept.append(rest[0])
    return kept


def _merge_dimensions(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    names = plain._list_after(prompt, "differ:")

    def key(name: str) -> str:
        facet = facet_of(name)
        return _display(facet.name) if facet else name

    return {"dimensions": _merged(names, key)}


def _merge_attributes(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    dimension = re.search(r"for the dimension '([^']+)'", prompt).group(1)  # type: ignore[union-attr]
    facet = facet_of(dimension)
    values = _merged(plain._list_after(prompt, "of images of"), lambda n: value_of(facet, n), rng)
    most = re.search(r"into (?:exactly|at most) (\d+)", prompt)
    k = int(most.group(1)) if most else 10
    if "into exactly" in prompt:
        values = (values + [f"kind {i}" for i in range(k)])[:k]
    values = values[:k]
    return {"attributes": values if len(values) > 1 else [*values, "other kind"]}


def _candidates(dimension: str, allowed: list[str], caption: str) -> list[str]:
    """The allowed names of what the caption mentions, in the order it mentions them."""
    facet = facet_of(dimension)
    if facet is None:
        words = plain._WORD.findall(caption)
        return [w for w in dict.fromkeys(words) if w in allowed]
    by_value: dict[str, list[str]] = {}
    for name in allowed:
        by_value.setdefault(value_of(facet, name), []).append(name)
    found = [n for value, _ in _matches(facet, caption) for n in by_value.get(value, [])]
    return list(dict.fromkeys(found))


def _choose(rng: random.Random | None, dimension: str, options: list[str], caption: str) -> str:
    allowed = [o for o in options if o != OTHER]
    found = _candidates(dimension, allowed, caption)
    if rng is None or (len(found) == 1 and len(_synonyms(dimension, allowed, found[0])) == 1):
        return found[0] if found else OTHER
    if rng.random() >= P_WAVER:
        return found[0] if found else OTHER
    if found:
        others = [n for n in _synonyms(dimension, allowed, found[0]) if n != found[0]]
        return rng.choice(found[1:] + others or [OTHER])
    return rng.choice(allowed) if allowed else OTHER


def _synonyms(dimension: str, allowed: list[str], name: str) -> list[str]:
    """The allowed names of the same vocabulary value as `name`."""
    facet = facet_of(dimension)
    return [n for n in allowed if value_of(facet, n) == value_of(facet, name)]


def _classify_all(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    caption = plain._single_caption(prompt)
    sampled = rng if body.get("temperature", 0) > 0 else None
    options = plain._options(prompt)
    return {"choices": {d: _choose(sampled, d, opts, caption) for d, opts in options.items()}}


def _diagnose(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    dimension = re.search(r"which value of '([^']+)'", prompt).group(1)  # type: ignore[union-attr]
    facet = facet_of(dimension)
    attrs = plain._list_after(prompt, "(one of")
    chosen = list(dict.fromkeys(plain._list_after(prompt, "disagreed:")))
    named = [c for c in chosen if c in attrs]
    verdict: dict[str, Any] = {"verdict": "hard_case", "merge": None, "merged_name": None}
    verdict["new_attribute"] = None
    for a in named:
        for b in named:
            if a != b and value_of(facet, a) == value_of(facet, b):
                return {
                    **verdict,
                    "verdict": "redundant",
                    "merge": [a, b],
                    "merged_name": value_of(facet, a),
                }
    covered = {value_of(facet, a) for a in attrs}
    caption = plain._single_caption(prompt)
    unlisted = [v for v, _ in _matches(facet, caption) if v not in covered] if facet else []
    if OTHER in chosen and unlisted:
        return {**verdict, "verdict": "missing", "new_attribute": unlisted[0]}
    return verdict


def _validate(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    dimension, new = re.search(r"dimension '([^']+)'.*Is '([^']+)'", prompt, re.S).groups()  # type: ignore[union-attr]
    facet = facet_of(dimension)
    attrs = plain._list_after(prompt, "has the values")
    return {"valid": all(value_of(facet, a) != value_of(facet, new) for a in attrs)}


def _assign(rng: random.Random, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    header, descriptions = prompt.split("Descriptions:")
    dims = plain.numbered_options(header)
    return {
        "answers": [
            {
                "id": i,
                "values": [opts[_choose(None, d, list(opts), c)] for d, opts in dims.items()],
            }
            for i, c in enumerate(plain._captions(descriptions), 1)
        ]
    }


_REQUESTS: list[tuple[str, Callable[[random.Random, dict[str, Any], str], dict[str, Any]]]] = [
    ("Propose ", _dimensions),
    ("These dimensions were proposed", _merge_dimensions),
    ("Values proposed for the dimension", _merge_attributes),
    ("For each dimension below, list up to", _attributes),
    ("Which value of each dimension does it show?", _classify_all),
    ("the answers disagreed", _diagnose),
    ("a real, distinct value", _validate),
    ("For each description give its id", _assign),
]


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The answer to a request: the same request, the same answer."""
    prompt = body["messages"][1]["content"]
    seen = json.dumps([prompt, body.get("seed"), body.get("temperature")])
    rng = random.Random(hashlib.sha256(seen.encode()).hexdigest())
    for marker, respond in _REQUESTS:
        if marker in prompt:
            return respond(rng, body, prompt)
    return plain.answer(body)


class VariedFakeLLM(plain.FakeLLM):
    def _text(self, body: dict[str, Any]) -> str:
        return json.dumps(answer(body), separators=(",", ":"))
