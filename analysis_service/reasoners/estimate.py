"""What discovery will cost in LLM calls and tokens, before it runs.

Counts follow the steps' parameters exactly; token counts use the one-token-per-4-characters
rule and typical answer sizes, so they are estimates, not quotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis_service.jobs.schemas import JobParameters
from analysis_service.settings import AnalysisSettings, DiscoverySteps

INSTRUCTIONS = 120  # system message and step instructions
CHARS_PER_TOKEN = 4  # the documented rule where no tokenizer is at hand


def tokens_for_chars(chars: float) -> float:
    """Tokens in a text of this many characters, by the one-token-per-4-characters rule."""
    return max(1.0, chars / CHARS_PER_TOKEN)


@dataclass
class Cost:
    calls: int = 0
    tokens: int = 0

    def add(self, calls: float, tokens_each: float) -> None:
        self.calls += math.ceil(calls)
        self.tokens += math.ceil(calls * tokens_each)


@dataclass(frozen=True)
class Group:
    images: int
    caption_tokens: float


def fixed_cost(c: DiscoverySteps, group: Group, criterion: bool, attributes: int) -> Cost:
    """Dimensions, attributes and refinement: independent of the group's size."""
    cost, t = Cost(), group.caption_tokens
    dims = 1 if criterion else c.dimensions_per_round
    listing = dims * (8 + 4 * (attributes + 1))
    if not criterion:
        cost.add(
            c.dimension_rounds, min(c.dimension_captions, group.images) * t + INSTRUCTIONS + 30
        )
        cost.add(1, INSTRUCTIONS + 10 * c.dimensions_per_round)
    # Attribute rounds ask for every dimension at once, then one merge per dimension.
    cost.add(
        c.attribute_rounds,
        min(c.attribute_captions, group.images) * t + INSTRUCTIONS + 12 * attributes * dims,
    )
    cost.add(dims, INSTRUCTIONS + 16 * attributes + 40)
    # Refinement: every dimension judged on each sampled caption; some disagree and are
    # diagnosed (about one dimension in four); a final merge per dimension.
    cost.add(c.refine_rounds * c.refine_repeats, t + INSTRUCTIONS + listing + 8 * dims)
    cost.add(c.refine_rounds * dims / 4, t + INSTRUCTIONS + 60 + 6 * attributes)
    cost.add(dims, INSTRUCTIONS + 12 * attributes + 40)
    return cost


def assignment_cost(c: DiscoverySteps, group: Group, dims: int, attributes: int) -> Cost:
    cost, t = Cost(), group.caption_tokens
    listing = dims * (8 + 4 * (attributes + 1))
    if c.assignment_mode == "per_image_dimension":
        cost.add(group.images * dims, t + INSTRUCTIONS + 5 * (attributes + 1) + 10)
    else:
        b = c.assign_captions_per_call
        calls = math.ceil(group.images / b)
        cost.add(calls, min(b, group.images) * (t + 5 + 4 + 6 * dims) + listing + INSTRUCTIONS)
    return cost


def estimate(
    c: DiscoverySteps, groups: list[Group], criterion: bool, attributes: int | None
) -> dict[str, int]:
    attrs = attributes or c.max_attributes
    dims = 1 if criterion else c.dimensions_per_round
    fixed, total = Cost(), Cost()
    for group in groups:
        f = fixed_cost(c, group, criterion, attrs)
        a = assignment_cost(c, group, dims, attrs)
        fixed.calls += f.calls
        fixed.tokens += f.tokens
        total.calls += f.calls + a.calls
        total.tokens += f.tokens + a.tokens
    return {
        "calls": total.calls,
        "tokens": total.tokens,
        "fixed_calls": fixed.calls,
        "fixed_tokens": fixed.tokens,
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
    steps = settings.discovery_steps(params.assignment_mode)
    groups = pooled(groups) if params.pooled else groups
    return estimate(steps, groups, params.criterion is not None, params.num_attributes)
