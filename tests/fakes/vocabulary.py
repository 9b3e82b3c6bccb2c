"""A vocabulary of visual facets (dimension -> attribute -> phrases that signal it) from which
the fake LLM answers as a model that reads captions would.

Phrases are regular expressions matched on lower-cased captions at word boundaries. The
vocabulary covers the words image captioners use for setting, background, light, weather,
pose and colour, plus the measured properties the pixel describer writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COLORS = {
    "red": "red|crimson|maroon",
    "orange": "orange",
    "yellow": "yellow|golden",
    "green": "green",
    "teal": "teal|turquoise|cyan",
    "blue": "blue|navy",
    "purple": "purple|violet",
    "pink": "pink",
    "brown": "brown|tan",
    "black": "black",
    "white": "white",
    "gray": "gray|grey|silver",
}


def _positional(where: str) -> dict[str, str]:
    return {name: rf"(?:{alts}) {where}" for name, alts in COLORS.items()}


FACETS: dict[str, dict[str, str]] = {
    "setting": {
        "indoor": r"indoors?|inside|room|kitchen|bedroom|bathroom|living room|office|couch|sofa"
        r"|carpet|rug|bed|shelf|table|desk|window sill|floor",
        "outdoor": r"outdoors?|outside|street|park|field|grass|lawn|garden|yard|beach|forest"
        r"|sky|road|sidewalk|lake|river|ocean|snow|mountain",
    },
    "background": {
        "grass": r"grass|grassy|lawn|meadow|field",
        "water": r"water|lake|river|ocean|sea|pond|waves",
        "snow": r"snow|snowy|ice|icy",
        "sand": r"sand|sandy|beach|desert",
        "trees": r"trees?|forest|woods|jungle|bamboo|foliage|branch(?:es)?",
        "sky": r"sky|clouds?",
        "street": r"street|road|sidewalk|city|parking lot|traffic",
        "building": r"building|house|wall|fence",
        "room": r"room|kitchen|bedroom|bathroom|couch|sofa|bed|carpet|rug|floor",
        "rocks": r"rocks?|rocky|stones?|mountain",
    },
    # Coarse place types, in the spirit of scene taxonomies such as Places365's top level.
    "place": {
        "dining": r"restaurant|dining|diner|cafe|café|bar|pizzeria|buffet|kitchen|food|meals?"
        r"|pizza|plates?|dishes|wine|eating|dinner|lunch|breakfast",
        "school": r"classroom|school|students?|teacher|lecture|laboratory|library|books?"
        r"|whiteboard|blackboard|chalkboard|microscopes?|science|graduation|campus|studying",
        "office": r"office|workplace|cubicle|meeting|conference|computers?|laptops?|monitors?"
        r"|business|desk",
        "street": r"street|city|sidewalk|downtown|traffic|intersection|crosswalk|buildings?"
        r"|urban|road|cars?",
        "nature": r"forest|mountains?|hills?|lake|river|ocean|woods|wilderness|nature|meadow"
        r"|trail|waterfall|canyon|grass|grassy|field|trees?|beach|sand|water|sky|rocks?"
        r"|snow|outdoors",
        "home": r"living room|bedroom|home|house|houses|couch|sofa|backyard|porch|apartment"
        r"|yard|lawn|fence|driveway|neighborhood|residential|garage|fireplace|bed",
        "sports venue": r"stadium|court|arena|gym|tennis|soccer|baseball|basketball|football"
        r"|athletes?|race|players?|ball|frisbee|skateboard|surf\w*|ski\w*|snowboard\w*"
        r"|racket|bat|team|match|pitch|track|pool|swimming|golf|climb\w*|ropes?|harness"
        r"|helmets?|sports?|athletic|uniforms?|jerseys?|competition",
        "event": r"crowd|gathering|event|concert|festival|audience|parade|ceremony|party"
        r"|celebration|stage|performance|protest|march",
        "store": r"store|market|shop|shelves|grocery|supermarket|mall|vendor|stall|shopping"
        r"|products|merchandise|display",
        "transport hub": r"airport|station|train|bus|platform|terminal|subway|railway|luggage"
        r"|suitcases?|passengers?|travelers?|escalators?|tracks|airplanes?|planes?|boarding",
    },
    "instrument": {
        "cello": r"cellos?",
        "violin": r"violins?|fiddles?|violas?",
        "guitar": r"guitars?|ukuleles?",
        "harp": r"harps?",
        "flute": r"flutes?",
        "saxophone": r"saxophones?|sax",
        "trumpet": r"trumpets?",
        "piano": r"pianos?|keyboards?",
        "drum": r"drums?|drum set",
        "clarinet": r"clarinets?",
        "trombone": r"trombones?",
        "accordion": r"accordions?",
    },
    "object": {
        "airplane": r"airplanes?|aeroplanes?|planes?|jets?|aircraft|airliners?",
        "car": r"cars?|automobiles?|sedans?|suvs?",
        "truck": r"trucks?|lorry|lorries|pickups?",
        "ship": r"ships?|boats?|vessels?|ferry|yachts?|sailboats?",
        "bus": r"bus|buses",
        "train": r"trains?|locomotives?",
        "bicycle": r"bicycles?|bikes?",
        "motorcycle": r"motorcycles?|motorbikes?",
        "bird": r"birds?|parrots?|ostrich(?:es)?|eagles?|owls?|ducks?|sparrows?|hens?|chickens?",
        "cat": r"cats?|kittens?",
        "dog": r"dogs?|puppy|puppies",
        "horse": r"horses?|pony|ponies|foals?",
        "deer": r"deer|antelopes?|elk|moose|gazelles?",
        "frog": r"frogs?|toads?",
        "cow": r"cows?|cattle|bulls?",
        "sheep": r"sheep|lambs?",
        "elephant": r"elephants?",
        "bear": r"bears?",
        "person": r"person|people|man|men|woman|women|child|children|boy|girl",
    },
    "time of day": {
        "daytime": r"daytime|during the day|sunny day|sunlight|sunlit",
        "night": r"night|nighttime|at night|dark sky",
        "sunset": r"sunset|sunrise|dusk|dawn",
    },
    "weather": {
        "sunny": r"sunny|clear sky|clear blue sky",
        "cloudy": r"cloudy|overcast|clouds",
        "rainy": r"rain|rainy|wet",
        "snowy": r"snowing|snowy|snowfall",
        "foggy": r"fog|foggy|mist|misty|haze|hazy",
    },
    "pose": {
        "sitting": r"sitting|seated|sits",
        "standing": r"standing|stands",
        "lying": r"lying|laying|lies|resting",
        "walking": r"walking|walks",
        "running": r"running|runs|jumping",
        "flying": r"flying|in flight|soaring",
        "swimming": r"swimming|floating",
        "perched": r"perched|perching",
        "sleeping": r"sleeping|asleep",
        "eating": r"eating|feeding|drinking",
        "playing": r"playing|plays",
    },
    "color": {name: alts for name, alts in COLORS.items()},
    "upper color": _positional("upper part"),
    "lower color": _positional("lower part"),
    "brightness": {
        "very dark": r"very dark",
        "dark": r"dark|dim|dimly lit",
        "evenly lit": r"evenly lit",
        "bright": r"bright|well lit|well-lit",
        "very bright": r"very bright",
    },
    "colorfulness": {
        "grayscale": r"grayscale|greyscale|black and white photo|monochrome",
        "muted": r"muted",
        "colorful": r"colorful|colourful",
        "vivid": r"vivid|vibrant",
    },
    "contrast": {
        "low contrast": r"low contrast",
        "moderate contrast": r"moderate contrast",
        "high contrast": r"high contrast",
    },
    "texture": {
        "smooth": r"smooth",
        "moderately textured": r"moderately textured",
        "highly textured": r"highly textured",
    },
    "framing": {
        "landscape": r"landscape (?:image|photo|format|orientation)",
        "portrait": r"portrait (?:image|photo|format|orientation)",
        "square": r"square (?:image|photo|format)",
    },
    "count": {
        "one": r"a single|one|alone|lone",
        "two": r"two|pair of|couple of",
        "several": r"three|four|five|several|multiple|group of|many|herd|flock",
    },
}


# Photographic properties split almost any set of images; content facets (setting, pose,
# background, colour of parts) say more about a dataset, so they rank first at equal spread.
WEIGHTS = {"framing": 0.5, "contrast": 0.7, "texture": 0.7, "colorfulness": 0.7, "brightness": 0.8}


@dataclass(frozen=True)
class Facet:
    """One dimension of the vocabulary, compiled: the earliest matching phrase wins."""

    name: str
    attributes: tuple[str, ...]
    pattern: re.Pattern[str]
    weight: float = 1.0

    def first(self, text: str, allowed: set[str] | None = None) -> str | None:
        for match in self.pattern.finditer(text):
            attribute = self.attributes[match.lastindex - 1] if match.lastindex else None
            if attribute is not None and (allowed is None or attribute in allowed):
                return attribute
        return None

    def most(self, text: str, allowed: set[str] | None = None) -> str | None:
        """The attribute mentioned most often; the earliest wins a tie. A caption that says
        'a man riding a horse ... the horse is brown' is about the horse."""
        counts: dict[str, int] = {}
        for match in self.pattern.finditer(text):
            attribute = self.attributes[match.lastindex - 1] if match.lastindex else None
            if attribute is not None and (allowed is None or attribute in allowed):
                counts[attribute] = counts.get(attribute, 0) + 1
        return max(counts, key=lambda a: counts[a]) if counts else None


def _compile(name: str, attributes: dict[str, str]) -> Facet:
    # Longer, more specific attributes first ("very dark" before "dark").
    ordered = sorted(attributes.items(), key=lambda kv: -len(kv[0]))
    # One capture group per attribute tells which attribute matched.
    groups = "|".join(f"(\\b(?:{alts})\\b)" for _, alts in ordered)
    return Facet(name, tuple(a for a, _ in ordered), re.compile(groups), WEIGHTS.get(name, 1.0))


VOCABULARY: tuple[Facet, ...] = tuple(_compile(name, attrs) for name, attrs in FACETS.items())
