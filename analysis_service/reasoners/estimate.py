"""What discovery will cost in LLM calls and tokens, before it runs.

Counts follow the steps' parameters. A round loop that may stop early (saturation.py) counts
the rounds it is expected to run, as measured on the shared caption sets through the varied
fake LLM (benchmarks/discovery_stopping.py); `worst_calls` and `worst_tokens` count every
round, the most the job can spend, which its token budget guards while it runs. Tokens use
the one-token-per-4-characters rule and typical answer sizes, so these are estimates, not
quotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis_service.jobs.schemas import JobParameters
from analysis_service.reasoners.llm_prompts import captions_per_call
from analysis_service.settings import AnalysisSettings, DiscoverySteps

INSTRUCTIONS = 120  # system message and step instructions
CHARS_PER_TOKEN = 4  # the documented rule where no tokenizer is at hand
NAME = 2.5  # tokens of one short quoted name in a list (a value, a dimension)
NUMBER = 0.5  # tokens of the number before a value in batched assignment's lists
#: Characters of one caption's row in a batched assignment answer besides its values
#: ('{"id":12,"values":[]},'), and per value ('3,'): the values are numbers.
ANSWER_ROW_CHARS = 21
ANSWER_VALUE_CHARS = 2
#: Rounds a saturated vote loop runs past the round where a value proposed once stops
#: passing the share threshold (⌈1/θ⌉), beyond SATURATION_ROUNDS - 1, per dimension past the
#: first that the attribute rounds ask about (more values, more late newcomers): measured.
ATTRIBUTE_LAG_PER_DIMENSION = 0.3
#: Chance that a refinement round changes one dimension's list: measured (front-loaded, as
#: the first rounds find what the merge left). It sets how soon SATURATION_ROUNDS quiet
#: rounds in a row come.
REFINE_CHANGES = 0.083
#: Share of dimensions whose sampled answers disagree in a refinement round, each then
#: diagnosed (and a new value validated): measured.
DISPUTED = 0.33


def tokens_for_chars(chars: float) -> float:
    """Tokens in a text of this many characters, by the one-token-per-4-characters rule."""
    return max(1.0, chars / CHARS_PER_TOKEN)


@dataclass
class Cost:
    calls: float = 0
    tokens: float = 0

    def add(self, calls: float, tokens_each: float) -> None:
        self.calls += calls
        self.tokens += calls * tokens_each

    def __iadd__(self, other: Cost) -> Cost:
        self.calls += other.calls
        self.tokens += other.tokens
        return self


@dataclass(frozen=True)
class Group:
    images: int
    #: Mean tokens of a caption as prompts show it (llm_prompts.shown).
    caption_tokens: float


def vote_rounds(
    c: DiscoverySteps, rounds: int, per_round: int, images: int, lag: float = 0.0
) -> float:
    """Rounds of a vote loop that are paid for; `lag`: rounds a saturated loop is expected
    to run past the earliest the rule allows once values seen once no longer pass."""
    if images <= per_round:
        return 1  # every round shows every caption: one question, asked once
    if c.saturation_rounds == 0:
        return rounds
    single_drops = math.ceil(1 / c.dimension_threshold) if c.dimension_threshold else 1
    expected = single_drops + c.saturation_rounds - 1 + lag
    return min(rounds, max(c.saturation_rounds + 1, expected))


def refine_rounds(c: DiscoverySteps, dims: int) -> float:
    """Rounds refinement is expected to run: until SATURATION_ROUNDS quiet rounds in a row,
    a round changing some list with chance q = 1 - (1 - REFINE_CHANGES)^dims (the waiting
    time of a run of n quiet rounds: ((1/(1 - q))^n - 1) / q)."""
    n, q = c.saturation_rounds, 1 - (1 - REFINE_CHANGES) ** dims
    if n == 0:
        return c.refine_rounds
    return min(c.refine_rounds, ((1 / (1 - q)) ** n - 1) / q)


def _listing(dims: int, attributes: int) -> float:
    """Tokens of the dimensions with their allowed values (and 'other'), as prompts list them."""
    return dims * (4 + NAME * (attributes + 1))


def fixed_cost(c: DiscoverySteps, group: Group, criterion: bool, attributes: int) -> Cost:
    """Dimensions, attributes and refinement: independent of the group's size."""
    cost, t = Cost(), group.caption_tokens
    dims = 1 if criterion else c.dimensions_per_round
    if not criterion:
        rounds = vote_rounds(c, c.dimension_rounds, c.dimension_captions, group.images)
        shown = min(c.dimension_captions, group.images) * (t + 1)
        cost.add(rounds, shown + INSTRUCTIONS + 40 + NAME * c.dimensions_per_round)
        cost.add(1, INSTRUCTIONS + 60 + 2 * NAME * c.dimensions_per_round)
    # Attribute rounds ask for every dimension at once, then one merge per dimension.
    lag = ATTRIBUTE_LAG_PER_DIMENSION * (dims - 1)
    rounds = vote_rounds(c, c.attribute_rounds, c.attribute_captions, group.images, lag)
    shown = min(c.attribute_captions, group.images) * (t + 1)
    cost.add(rounds, shown + INSTRUCTIONS + 60 + _listing(dims, attributes))
    cost.add(dims, INSTRUCTIONS + 60 + 3 * NAME * attributes)
    # Refinement: every dimension judged on each sampled caption, those whose answers
    # disagree diagnosed; a final merge per dimension.
    rounds = refine_rounds(c, dims)
    cost.add(rounds * c.refine_repeats, t + INSTRUCTIONS + 40 + _listing(dims, attributes))
    cost.add(rounds * dims * DISPUTED, t + INSTRUCTIONS + 100 + NAME * attributes)
    cost.add(dims, INSTRUCTIONS + 60 + 2 * NAME * attributes)
    return cost


def assignment_cost(
    c: DiscoverySteps, group: Group, dims: int, attributes: int, max_tokens: int
) -> Cost:
    """Batched: each caption with its number, answered by its id and a value's number per
    dimension; each call lists the dimensions with their numbered values."""
    cost, t = Cost(), group.caption_tokens
    if c.assignment_mode == "per_image_dimension":
        cost.add(group.images * dims, t + INSTRUCTIONS + 40 + NAME * (attributes + 2))
    else:
        per_call = captions_per_call(c.assign_captions_per_call, dims, max_tokens)
        listing = _listing(dims, attributes) + NUMBER * dims * (attributes + 1)
        cost.add(math.ceil(group.images / per_call), INSTRUCTIONS + 60 + listing)
        row = tokens_for_chars(ANSWER_ROW_CHARS + ANSWER_VALUE_CHARS * dims)
        cost.tokens += group.images * (t + 1 + row)
    return cost


def _totals(
    c: DiscoverySteps, groups: list[Group], criterion: bool, attributes: int, max_tokens: int
) -> tuple[Cost, Cost]:
    """(fixed steps, whole job) over the groups."""
    dims = 1 if criterion else c.dimensions_per_round
    fixed, total = Cost(), Cost()
    for group in groups:
        f = fixed_cost(c, group, criterion, attributes)
        fixed += f
        total += f
        total += assignment_cost(c, group, dims, attributes, max_tokens)
    return fixed, total


def estimate(
    c: DiscoverySteps,
    groups: list[Group],
    criterion: bool,
    attributes: int | None,
    max_tokens: int,
) -> dict[str, int]:
    """The job's cost; `max_tokens` (LLM_MAX_TOKENS) bounds the captions of an assignment
    call (llm_prompts.captions_per_call)."""
    attrs = attributes or c.max_attributes
    fixed, total = _totals(c, groups, criterion, attrs, max_tokens)
    every_round = c.model_copy(update={"saturation_rounds": 0})
    _, worst = _totals(every_round, groups, criterion, attrs, max_tokens)
    return {
        "calls": math.ceil(total.calls),
        "tokens": math.ceil(total.tokens),
        "fixed_calls": math.ceil(fixed.calls),
        "fixed_tokens": math.ceil(fixed.tokens),
        "worst_calls": math.ceil(worst.calls),
        "worst_tokens": math.ceil(worst.tokens),
    }


def budget_problem(budget: int | None, cost: dict[str, int] | None) -> str | None:
    """Why a token budget cannot work: it is below the estimate of the fixed steps, which any
    job runs whatever its size."""
    if budget is None or cost is None or budget >= cost["fixed_tokens"]:
        return None
    return (
        f"token_budget {budget} is below the estimate for the fixed steps "
        f"(dimensions, attributes, refinement): {cost['fixed_tokens']} tokens in "
        f"{cost['fixed_calls']} calls; the whole job is estimated at {cost['tokens']} "
        f"tokens in {cost['calls']} calls"
    )


def pooled(groups: list[Group]) -> list[Group]:
    """The groups as one (organization mode), captions of the mean length."""
    images = sum(g.images for g in groups)
    if not images:
        return []
    return [Group(images, sum(g.images * g.caption_tokens for g in groups) / images)]


def for_job(
    settings: AnalysisSettings, params: JobParameters, groups: list[Group]
) -> dict[str, int] | None:
    """A job's estimate over its groups of captions; None when no LLM is configured (the
    offline reasoner makes no calls)."""
    if settings.llm_in_use is None or not groups:
        return None
    steps = settings.discovery_steps(params.assignment_mode, params.saturation_rounds)
    groups = pooled(groups) if params.pooled else groups
    criterion = params.criterion is not None
    return estimate(steps, groups, criterion, params.num_attributes, settings.llm_max_tokens)
