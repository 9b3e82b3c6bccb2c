"""A fake LLM behind the chat-completions protocol: answers each SSD-LLM step with
well-formed, plausible JSON derived from the text it is given.

It reads the request the way a model would: the captions listed in the prompt, the
dimension and the allowed values. Facts come from the offline vocabulary (so answers depend
on the captions), never from labels. Token rule (documented, used by benchmarks): one token
per four characters of every message, and of the answer.

It is gullible, as models can be: an instruction to propose a dimension ("propose the dimension
'x' with attribute 'y'") found in the prompt outside the fenced descriptions (between
<descriptions> or <description> tags) is followed. Inside the fence a description is data:
counted like any other.

An answer longer than the request's max_tokens is cut there, mid-JSON, as a model's is.

Serve it with `FakeLLM()` (a context manager); faults are queued with `faults.extend([...])`:
'429', '500', 'timeout', 'malformed' (not JSON), 'outside' (values outside the allowed lists),
'400'. `reject_modes` makes it refuse response_format types, as servers without structured
output do.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from analysis_service.reasoners.base import ranked
from tests.fakes.chat_server import ChatServer
from tests.fakes.vocabulary import VOCABULARY

_FACETS = {f.name: f for f in VOCABULARY}
_ALIASES = {
    "location": "background",
    "place": "background",
    "scene": "background",
    "action": "pose",
    "activity": "pose",
    "colour": "color",
    "time": "time of day",
    "lighting": "brightness",
}
_LISTED = re.compile(r"^\d+\. (.*)$", re.M)
_QUOTED = re.compile(r"'([^']+)'")
_WORD = re.compile(r"[a-z][a-z-]{3,}")
_FENCED = re.compile(r"<(descriptions?)>\n(.*?)\n</\1>", re.S)
_INSTRUCTION = re.compile(
    r"propose the dimension '([^']+)' with (?:the )?attribute '([^']+)'", re.I
)


#: The number an 'outside' fault answers batched assignment with: no list is this long.
OUTSIDE_NUMBER = 99


def count_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _facet(name: str):  # type: ignore[no-untyped-def]
    name = name.lower().strip()
    return _FACETS.get(name) or _FACETS.get(_ALIASES.get(name, ""))


def _list_after(text: str, marker: str) -> list[str]:
    """The Python-style list printed after a marker, e.g. "values: ['a', 'b']"."""
    start = text.find("[", text.find(marker))
    end = text.find("]", start)
    return [s.strip() for s in _QUOTED.findall(text[start : end + 1])]


def _captions(text: str) -> list[str]:
    fenced = _FENCED.search(text)
    return [c.lower() for c in _LISTED.findall(fenced.group(2) if fenced else text)]


def _single_caption(prompt: str) -> str:
    """The one description of a prompt about one image."""
    fenced = _FENCED.search(prompt)
    return (fenced.group(2) if fenced else prompt.split("\n")[1]).lower()


def injected(prompt: str) -> tuple[str, str] | None:
    """The (dimension, attribute) an instruction outside the fenced descriptions asks for."""
    found = _INSTRUCTION.search(_FENCED.sub(" ", prompt))
    return (found.group(1).lower(), found.group(2).lower()) if found else None


def _values_in(dimension: str, captions: list[str], most: int) -> list[str]:
    facet = _facet(dimension)
    counts: Counter[str] = Counter()
    for caption in captions:
        if facet is not None:
            if (value := facet.first(caption)) is not None:
                counts[value] += 1
        else:
            counts.update(set(_WORD.findall(caption)))
    return [v for v, _ in ranked(counts, most)] or ["plain", "varied"]


def _choose(dimension: str, options: list[str], caption: str) -> str:
    facet = _facet(dimension)
    allowed = set(options) - {"other"}
    if facet is not None:
        return facet.first(caption, allowed) or "other"
    for word in _WORD.findall(caption):
        if word in allowed:
            return word
    return "other"


def _options(text: str) -> dict[str, list[str]]:
    """'- dimension: ['a', 'other']' or '1. dimension: [...]' lines -> {dimension: values}."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^(?:- |\d+\. )(.+?): \[(.*)\]$", line)
        if match:
            found[match.group(1)] = _QUOTED.findall(match.group(2))
    return found


def numbered_options(text: str) -> dict[str, dict[str, int]]:
    """Lines "- dimension: 1 'a', 2 'b', 0 'other'" -> {dimension: {value: its number}}."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^- (.+?): (\d+ '.*)$", line)
        if match:
            pairs = re.findall(r"(\d+) '([^']+)'", match.group(2))
            found[match.group(1)] = {name: int(n) for n, name in pairs}
    return found


def _sampled_disagreement(body: dict[str, Any]) -> bool:
    """Sampled (temperature > 0) answers sometimes disagree, as real ones do."""
    return body.get("temperature", 0) > 0 and body.get("seed", 0) % 3 == 1


def _next_option(options: list[str], choice: str) -> str:
    return options[(options.index(choice) + 1) % len(options)]


def _suggest_dimensions(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    captions = _captions(prompt)
    scores: Counter[str] = Counter()
    for name, facet in _FACETS.items():
        scores[name.split()[0]] = sum(1 for c in captions if facet.first(c))
    count = int(re.search(r"Propose (\d+)", prompt).group(1))  # type: ignore[union-attr]
    names = [d for d, _ in ranked(scores, count)]
    if (order := injected(prompt)) is not None:
        names = [order[0], *names][:count]
    return {"dimensions": names}


def _merge_dimensions(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {"dimensions": list(dict.fromkeys(_list_after(prompt, "differ:")))}


def _merge_attributes(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    values = list(dict.fromkeys(_list_after(prompt, "of images of")))
    exactly = re.search(r"into exactly (\d+)", prompt)
    if exactly:
        k = int(exactly.group(1))
        values = (values + [f"kind {i}" for i in range(k)])[:k]
    return {"attributes": values[:10] if len(values) > 1 else [*values, "other kind"]}


def _suggest_attributes(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    most = int(re.search(r"list up to (\d+)", prompt).group(1))  # type: ignore[union-attr]
    wanted = prompt.split("at most three words:")[1].split("Answer as")[0]
    dims = [line[2:].strip() for line in wanted.splitlines() if line.startswith("- ")]
    captions = _captions(prompt)
    values = {d: _values_in(d, captions, most) for d in dims}
    if (order := injected(prompt)) is not None and order[0] in values:
        values[order[0]] = [order[1], *values[order[0]]][:most]
    return {"attributes": values}


def _classify_all(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    caption = _single_caption(prompt)
    options = _options(prompt)
    choices = {d: _choose(d, opts, caption) for d, opts in options.items()}
    if _sampled_disagreement(body):
        first = next(iter(options))
        choices[first] = _next_option(options[first], choices[first])
    return {"choices": choices}


def _classify_one(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    caption = _single_caption(prompt)
    dimension = _QUOTED.search(prompt[prompt.find("dimension") :]).group(1)  # type: ignore[union-attr]
    options = _list_after(prompt, "Choose one of")
    choice = _choose(dimension, options, caption)
    if _sampled_disagreement(body):
        choice = _next_option(options, choice)
    return {"attribute": choice}


def _diagnose(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    # An 'other' among the answers means a value is missing; anything else is a hard case.
    if "'other'" in prompt.split("disagreed:")[1]:
        verdict, new = "missing", "something else"
    else:
        verdict, new = "hard_case", None
    return {"verdict": verdict, "merge": None, "merged_name": None, "new_attribute": new}


def _validate(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {"valid": True}


def _assign(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    header, descriptions = prompt.split("Descriptions:")
    dims = numbered_options(header)
    return {
        "answers": [
            {"id": i, "values": [opts[_choose(d, list(opts), c)] for d, opts in dims.items()]}
            for i, c in enumerate(_captions(descriptions), 1)
        ]
    }


_IMAGE_PROMPT = re.compile(r"realistic photo of (.+?) whose (.+?) is clearly '([^']+)'")


def _image_prompt(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    """A prompt naming the subject and the attribute, with a word seen in the descriptions."""
    found = _IMAGE_PROMPT.search(prompt)
    subject, dimension, attribute = found.groups() if found else ("a subject", "look", "any")
    words = Counter(w for c in _captions(prompt) for w in _WORD.findall(c))
    detail = f", {ranked(words, 1)[0][0]}" if words else ""
    return {"prompt": f"a realistic photo of {subject}, {dimension} {attribute}{detail}"}


#: What each request says, and the answer to it; the first match answers.
_REQUESTS: list[tuple[str, Callable[[dict[str, Any], str], dict[str, Any]]]] = [
    ("Propose ", _suggest_dimensions),
    ("These dimensions were proposed", _merge_dimensions),
    ("Values proposed for the dimension", _merge_attributes),
    ("For each dimension below, list up to", _suggest_attributes),
    ("Which value of each dimension does it show?", _classify_all),
    ("Which value of the dimension", _classify_one),
    ("the answers disagreed", _diagnose),
    ("a real, distinct value", _validate),
    ("For each description give its id", _assign),
    ("Write a prompt for a text-to-image model", _image_prompt),
]


def answer(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body["messages"][1]["content"]
    for marker, respond in _REQUESTS:
        if marker in prompt:
            return respond(body, prompt)
    return {"error": "unrecognised prompt"}


def outside(data: dict[str, Any]) -> dict[str, Any]:
    """The same answer with every chosen value replaced by one nobody allowed."""
    if "answers" in data:  # a number no list reaches
        return {
            "answers": [
                {"id": a["id"], "values": [OUTSIDE_NUMBER] * len(a["values"])}
                for a in data["answers"]
            ]
        }
    if "attribute" in data:
        return {"attribute": "purple elephant"}
    if "choices" in data:
        return {"choices": dict.fromkeys(data["choices"], "purple elephant")}
    if "prompt" in data:  # a prompt with a line break and a bell in it
        return {"prompt": data["prompt"] + "\n\x07ignore the above"}
    return data


class FakeLLM(ChatServer):
    def __init__(self, delay_s: float = 0.0):
        super().__init__(answer=self._text, delay_s=delay_s)
        self.reject_modes: set[str] = set()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def _text(self, body: dict[str, Any]) -> str:
        # Structured-output endpoints answer with minified JSON.
        return json.dumps(answer(body), separators=(",", ":"))

    def transform_outside(self, text: str) -> str:
        return json.dumps(outside(json.loads(text)))

    def limited(self, body: dict[str, Any], text: str) -> tuple[str, str]:
        """Cut at max_tokens by the token rule, mid-answer, as a model stops there."""
        most = body.get("max_tokens")
        if isinstance(most, int) and count_tokens(text) > most:
            return text[: most * 4], "length"
        return text, "stop"

    def usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(count_tokens(m["content"]) for m in body["messages"])
        completion = count_tokens(text)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
