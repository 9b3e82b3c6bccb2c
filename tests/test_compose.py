"""docker-compose.yml, checked against the code (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from analysis_service.launcher import LauncherSettings
from caption_service.settings import CaptionSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {"migrate", "caption", "analysis-api", "analysis-worker"}
# Read by libraries or the platform, not by our settings classes.
EXTERNAL_ENV = {"HF_HOME", "HF_TOKEN"}


# Secrets compose must be given (`${VAR:?message}`): there is no default to fall back on.
REQUIRED = {"POSTGRES_PASSWORD", "CAPTION_API_KEY", "ANALYSIS_API_KEYS"}
# What the checks below put in place of a required variable: a value a user could set.
EXAMPLE = {"ANALYSIS_API_KEYS": "admin:" + "k" * 32}


def interpolate(value: object) -> str:
    """Compose's ${VAR:-default} with nothing set: the default; ${VAR:?message}: an example
    of a value the user must set."""
    text = re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: EXAMPLE.get(m[1], "s" * 32), str(value))
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def references(name: str) -> list[str]:
    """Every `${NAME...}` in docker-compose.yml, as written."""
    text = (ROOT / "docker-compose.yml").read_text()
    return re.findall(r"\$\{" + name + r"[:}][^}]*\}?", text)


def settings_class(name: str) -> type:
    return CaptionSettings if name == "caption" else LauncherSettings


def test_the_deployment_has_every_service():
    assert set(SERVICES) == {"postgres", *OURS}


@pytest.mark.parametrize("name", sorted(OURS))
def test_commands_name_real_modules_and_factories(name: str):
    command = SERVICES[name]["command"]
    assert command[1] == "-m"
    module = command[2]
    assert importlib.util.find_spec(module) is not None, module
    for arg in command:
        if re.fullmatch(r"[a-z_.]+:[a-z_]+", arg):
            mod, attr = arg.split(":")
            assert callable(getattr(importlib.import_module(mod), attr)), arg


@pytest.mark.parametrize("name", sorted(OURS))
def test_environment_names_are_settings_and_values_validate(name: str):
    env = {k: interpolate(v) for k, v in SERVICES[name]["environment"].items()}
    cls = settings_class(name)
    fields = {f.upper() for f in cls.model_fields}
    unknown = set(env) - fields - EXTERNAL_ENV
    assert not unknown, f"{name} sets variables no code reads: {unknown}"
    values = {k.lower(): v for k, v in env.items() if k in fields}
    cls(**values)  # raises if a value is not accepted (e.g. an unknown engine)


@pytest.mark.parametrize("name", sorted(OURS))
def test_dockerfiles_exist_and_copy_what_exists(name: str):
    dockerfile = ROOT / SERVICES[name]["build"]["dockerfile"]
    text = dockerfile.read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name}: {source}"


def test_startup_order_and_health():
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("analysis-api", "analysis-worker"):
        assert (
            SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    assert SERVICES["analysis-worker"]["depends_on"]["caption"]["condition"] == "service_healthy"
    for name in ("postgres", "caption", "analysis-api"):
        assert "healthcheck" in SERVICES[name]


def test_caption_service_runs_vllm_on_a_gpu():
    caption = SERVICES["caption"]
    assert caption["environment"]["CAPTION_ENGINE"] == "vllm"
    device = caption["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert caption["ipc"] == "host"
    assert any(v.startswith("hf-cache:") for v in caption["volumes"])
    assert "hf-cache" in COMPOSE["volumes"]
    start = caption["healthcheck"]["start_period"]
    assert int(start.rstrip("s")) >= 300
    assert "/readyz" in " ".join(caption["healthcheck"]["test"])


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_secrets_have_no_default_and_stop_compose_with_a_message(name: str):
    found = references(name)
    assert found, f"{name} is not used"
    for ref in found:
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", ref), f"{ref}: needs ${{{name}:?msg}}"


def test_the_caption_service_is_guarded_and_not_published():
    caption = SERVICES["caption"]
    assert "ports" not in caption and "network_mode" not in caption
    assert "CAPTION_API_KEY" in caption["environment"]
    # The workers send the same secret the caption service requires.
    worker_env = SERVICES["analysis-worker"]["environment"]
    assert worker_env["CAPTION_API_KEY"] == caption["environment"]["CAPTION_API_KEY"]


def test_the_api_listens_on_every_interface_only_with_keys():
    api = SERVICES["analysis-api"]
    assert api["command"] == ["python", "-m", "analysis_service.api"]
    env = {k: interpolate(v) for k, v in api["environment"].items()}
    assert env["HOST"] == "0.0.0.0" and int(env["ANALYSIS_PORT"]) == 8000
    assert LauncherSettings(**{k.lower(): v for k, v in env.items()}).env_api_keys
    assert any(p.endswith(":8000") for p in api["ports"])
