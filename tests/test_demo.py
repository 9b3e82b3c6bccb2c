"""The demo's synthetic model: it fails on one discovered group, at the planted rates, the
same way every run."""

from __future__ import annotations

from analysis_service import demo


def _sub(cls: str, dim: str, attr: str, size: int, share: float, other: bool = False) -> dict:
    return {
        "class": cls,
        "dimension": dim,
        "attribute": attr,
        "size": size,
        "share": share,
        "is_other": other,
    }


def test_the_planted_group_is_a_testable_attribute_of_a_dimension_every_class_has():
    subpopulations = [
        _sub("bird", "colorfulness", "colorful", 12, 0.3),  # only bird has colorfulness
        _sub("bird", "sky", "blue", 30, 0.75),
        _sub("bird", "sky", "grey", 10, 0.25),
        _sub("bird", "sky", "other", 12, 0.3, other=True),
        _sub("boat", "sky", "night", 4, 0.3),  # too small to test
        _sub("boat", "sky", "blue", 36, 0.7),
    ]
    assert demo.planted_group(subpopulations) == ("bird", "sky", "grey")
    assert demo.planted_group([_sub("bird", "sky", "blue", 3, 0.3)]) is None


def test_planted_predictions_err_at_the_planted_rates_with_a_fixed_seed():
    rows = [
        {"file_name": f"{c}/{i:03d}.jpg", "class": c, "sky": "grey" if i < 40 else "blue"}
        for c in ("bird", "boat")
        for i in range(100)
    ]
    group = ("bird", "sky", "grey")
    predictions = demo.planted_predictions(rows, group)
    assert predictions == demo.planted_predictions(list(reversed(rows)), group)
    assert sorted(p["image"] for p in predictions) == sorted(r["file_name"] for r in rows)
    truth = {r["file_name"]: r for r in rows}
    wrong = [p for p in predictions if p["prediction"] != truth[p["image"]]["class"]]
    in_group = [
        p for p in wrong if p["image"].startswith("bird/") and truth[p["image"]]["sky"] == "grey"
    ]
    assert len(in_group) == round(demo.PLANTED_ERROR_RATE * 40)
    assert len(wrong) - len(in_group) == round(demo.BASE_ERROR_RATE * 160)
    assert {p["prediction"] for p in predictions} == {"bird", "boat"}
