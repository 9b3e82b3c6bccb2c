"""Slices over the API: a planted failing group comes out first and significant with an
interval holding its planted error rate; random errors give no discovery; a slice's images
page by id; bad requests name what exists."""

from __future__ import annotations

import random

import httpx
import pytest

from benchmarks.synthetic_job import SyntheticImage, insert_job

BACKGROUNDS = ("water", "grass", "sky", "snow")
TIMES = ("day", "night")
PLANTED_RATE = 0.45
BASE_RATE = 0.05


def _images(seed: int, per_class: int = 300) -> list[SyntheticImage]:
    rng = random.Random(seed)
    return [
        SyntheticImage(
            f"{c}/{i:04d}.jpg",
            c,
            {"background": rng.choice(BACKGROUNDS), "time of day": rng.choice(TIMES)},
        )
        for c in ("red kite", "crow")
        for i in range(per_class)
    ]


def _predictions(images: list[SyntheticImage], seed: int, planted: bool) -> list[dict]:
    """Exactly PLANTED_RATE of the red kites on water wrong (when planted), BASE_RATE of
    every other group, drawn with a fixed seed."""
    rng = random.Random(seed)
    groups: dict[bool, list[SyntheticImage]] = {True: [], False: []}
    for image in images:
        on_water = image.class_name == "red kite" and image.attributes["background"] == "water"
        groups[planted and on_water].append(image)
    wrong = set()
    for is_planted, members in groups.items():
        rate = PLANTED_RATE if is_planted else BASE_RATE
        wrong |= {m.relpath for m in rng.sample(members, round(rate * len(members)))}
    other = {"red kite": "crow", "crow": "red kite"}
    return [
        {
            "image": m.relpath,
            "prediction": other[m.class_name] if m.relpath in wrong else m.class_name,
        }
        for m in images
    ]


async def _job_with(api, sessionmaker, seed: int, planted: bool) -> tuple[str, int]:
    images = _images(seed)
    async with sessionmaker() as session, session.begin():
        job = str(await insert_job(session, images))
    resp = await api.post(
        f"/v1/jobs/{job}/predictions", json={"predictions": _predictions(images, seed, planted)}
    )
    assert resp.status_code == 201, resp.text
    return job, resp.json()["id"]


async def test_a_planted_failing_group_comes_out_first_and_significant(api, sessionmaker):
    job, set_id = await _job_with(api, sessionmaker, seed=1, planted=True)
    resp = await api.get(f"/v1/jobs/{job}/slices", params={"predictions": set_id})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    top = report["items"][0]
    assert (top["class"], top["conditions"]) == (
        "red kite",
        [{"dimension": "background", "attribute": "water"}],
    )
    assert top["significant"] and top["q_value"] <= 0.05
    assert top["ci_low"] <= PLANTED_RATE <= top["ci_high"]
    rate, low, high, base = (
        round(100 * top[k]) for k in ("error_rate", "ci_low", "ci_high", "baseline_error_rate")
    )
    assert top["description"] == (
        f"red kite images whose background is water: {rate}% wrong (95% CI {low}-{high}%) "
        f"against {base}% for the other red kite images"
    )
    # Every other significant slice is a part of the planted group.
    for item in report["items"][1:]:
        if item["significant"]:
            assert {"dimension": "background", "attribute": "water"} in item["conditions"]
    assert report["tested"] > 2 * (len(BACKGROUNDS) + len(TIMES))  # pairs were tested too
    singles = (
        await api.get(f"/v1/jobs/{job}/slices", params={"predictions": set_id, "max_conditions": 1})
    ).json()
    assert all(len(item["conditions"]) == 1 for item in singles["items"])
    assert singles["tested"] < report["tested"]


@pytest.mark.parametrize("seed", [2, 3])
async def test_random_errors_give_no_significant_slice(api, sessionmaker, seed):
    job, set_id = await _job_with(api, sessionmaker, seed=seed, planted=False)
    report = (await api.get(f"/v1/jobs/{job}/slices", params={"predictions": set_id})).json()
    assert report["tested"] > 0 and report["significant"] == 0
    assert not any(item["significant"] for item in report["items"])


async def test_a_set_with_no_error_answers_an_empty_list(api, sessionmaker):
    images = _images(4, per_class=40)
    async with sessionmaker() as session, session.begin():
        job = str(await insert_job(session, images))
    rows = [{"image": m.relpath, "prediction": m.class_name} for m in images]
    set_id = (await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": rows})).json()[
        "id"
    ]
    resp = await api.get(f"/v1/jobs/{job}/slices", params={"predictions": set_id, "min_size": 1})
    assert resp.status_code == 200
    assert resp.json()["items"] == [] and resp.json()["significant"] == 0


async def test_a_slices_images_page_by_id_with_their_predictions(api, sessionmaker):
    job, set_id = await _job_with(api, sessionmaker, seed=1, planted=True)
    top = (await api.get(f"/v1/jobs/{job}/slices", params={"predictions": set_id})).json()["items"][
        0
    ]
    seen: list[dict] = []
    after = 0
    while True:
        url = httpx.URL(top["images_url"]).copy_merge_params({"limit": 30, "after": after})
        page = (await api.get(url)).json()
        seen += page["items"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert len(seen) == top["size"] == len({i["image_id"] for i in seen})
    assert sum(not i["correct"] for i in seen) == top["errors"]
    url = httpx.URL(top["images_url"]).copy_merge_params({"errors_only": True, "limit": 1000})
    wrong = await api.get(url)
    assert len(wrong.json()["items"]) == top["errors"]
    pair = await api.get(
        f"/v1/jobs/{job}/slices/images",
        params={
            "predictions": set_id,
            "class": "red kite",
            "dimension": "background",
            "attribute": "water",
            "dimension2": "time of day",
            "attribute2": "night",
            "limit": 1000,
        },
    )
    assert pair.status_code == 200 and 0 < len(pair.json()["items"]) < top["size"]


async def test_unknown_sets_classes_dimensions_and_attributes_say_what_exists(api, sessionmaker):
    job, set_id = await _job_with(api, sessionmaker, seed=1, planted=True)
    base = f"/v1/jobs/{job}/slices"
    missing = await api.get(base, params={"predictions": set_id + 1000})
    assert missing.status_code == 404 and f"this job's sets: {set_id}" in missing.json()["detail"]
    bad_class = await api.get(base, params={"predictions": set_id, "class": "owl"})
    assert bad_class.status_code == 422 and "crow, red kite" in bad_class.json()["detail"]
    params = {"predictions": set_id, "class": "crow", "dimension": "colour", "attribute": "x"}
    bad_dim = await api.get(f"{base}/images", params=params)
    assert bad_dim.status_code == 422
    assert "its dimensions: background, time of day" in bad_dim.json()["detail"]
    params |= {"dimension": "background", "attribute": "lava"}
    bad_attr = await api.get(f"{base}/images", params=params)
    assert bad_attr.status_code == 422 and "water" in bad_attr.json()["detail"]
    params |= {"attribute": "water", "dimension2": "time of day"}
    assert (await api.get(f"{base}/images", params=params)).status_code == 422
