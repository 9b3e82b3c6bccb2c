"""Group labels of one dimension: y (class index), a (attribute index), group = y * n_a + a."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Job
from analysis_service.subpopulations.service import class_structure, dimensions_listing
from shared.errors import InvalidRequest

CSV_COLUMNS = ["filename", "split", "y", "a", "group", "class", "attribute"]


@dataclass(frozen=True)
class Labels:
    """The indices of one request: classes asked and the dimension's attributes over them."""

    dimension: str
    classes: list[str]
    attributes: list[str]

    def row(self, class_name: str, attribute: str) -> tuple[int, int, int]:
        y, a = self.classes.index(class_name), self.attributes.index(attribute)
        return y, a, y * len(self.attributes) + a

    def csv_row(self, row: Any) -> list[object]:
        _, filename, class_name, attribute, split = row
        return [filename, split, *self.row(class_name, attribute), class_name, attribute]


async def labels(session: AsyncSession, job: Job, dimension: str, class_name: str | None) -> Labels:
    """The classes asked (all, or one) and the dimension's attributes, which every one of them
    must have: 422 listing each class's dimensions when one lacks it."""
    tree = await class_structure(session, job)
    if class_name is not None:
        if class_name not in tree:
            raise InvalidRequest(
                f"class '{class_name}' is not in the job; its classes: {', '.join(tree)}"
            )
        tree = {class_name: tree[class_name]}
    lacking = [c for c, dims in tree.items() if dimension not in dims]
    if lacking or not tree:
        raise InvalidRequest(
            f"dimension '{dimension}' is not in every class asked (missing in "
            f"{', '.join(lacking) or 'all'}); the dimensions of each: {dimensions_listing(tree)}"
        )
    classes = sorted(tree)
    attributes = list(dict.fromkeys(a for c in classes for a in tree[c][dimension]))
    return Labels(dimension, classes, attributes)
