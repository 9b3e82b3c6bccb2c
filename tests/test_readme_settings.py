"""The README's configuration tables list exactly the settings the classes define, with the
classes' defaults: a setting added without a row, or a default that drifts, fails here.

A default written in backticks must equal the code's (numerically for numbers); `unset` is
None and `empty` an empty string or key; a default in plain words is allowed only for a string
too long for a table cell (CAPTION_INSTRUCTION)."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic_settings import BaseSettings

from analysis_service.launcher import LauncherSettings
from caption_service.settings import CaptionSettings
from shared.settings import ServiceSettings

README = Path(__file__).resolve().parents[1] / "README.md"
PROSE_DEFAULT_MIN_LENGTH = 80


def env_defaults(
    model: type[BaseModel],
    prefix: str = "",
    delimiter: str | None = None,
    values: BaseModel | None = None,
) -> dict[str, Any]:
    """Environment variable -> default for every setting `model` reads, nested models included
    when the class sets `env_nested_delimiter` (their variables are PARENT<delimiter>CHILD)."""
    if issubclass(model, BaseSettings):
        prefix = prefix or model.model_config.get("env_prefix", "")
        delimiter = model.model_config.get("env_nested_delimiter")
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        default = (
            getattr(values, name)
            if values is not None
            else field.get_default(call_default_factory=True)
        )
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            alias = next((choice for choice in alias.choices if isinstance(choice, str)), None)
        env = (alias if isinstance(alias, str) else prefix + name).upper()
        nested = field.annotation
        if delimiter and isinstance(nested, type) and issubclass(nested, BaseModel):
            found |= env_defaults(nested, env + delimiter.upper(), delimiter, default)
        else:
            found[env] = default
    return found


def readme_tables() -> dict[str, dict[str, str]]:
    """Heading -> {variable: default cell} for each table under '## Configuration'."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    tables: dict[str, dict[str, str]] = {}
    heading = None
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line.removeprefix("### ").strip()
            tables[heading] = {}
        elif line.startswith("|") and heading and not re.match(r"\|\s*(variable|-)", line):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            name = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0])
            assert name, f"README row {line!r}: one variable per row, in backticks"
            assert name[1] not in tables[heading], f"{name[1]} has two rows"
            tables[heading][name[1]] = cells[1]
    return tables


def default_matches(cell: str, default: Any) -> bool:
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, Enum):
        default = default.value
    if cell == "unset":
        return default is None
    if cell == "empty":
        return default == ""
    written = re.fullmatch(r"`([^`]*)`", cell)
    if not written:
        return isinstance(default, str) and len(default) >= PROSE_DEFAULT_MIN_LENGTH
    value = written[1]
    if isinstance(default, bool):
        return value.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(value) == float(default)
        except ValueError:
            return False
    return value == str(default)


SHARED = env_defaults(ServiceSettings)
EXPECTED = {
    "Both services": SHARED,
    "Analysis service and worker": {
        env: default for env, default in env_defaults(LauncherSettings).items() if env not in SHARED
    },
    "Caption service": {
        env: default for env, default in env_defaults(CaptionSettings).items() if env not in SHARED
    },
}


def test_readme_has_one_table_per_settings_class():
    assert list(readme_tables()) == list(EXPECTED)


@pytest.mark.parametrize("heading", list(EXPECTED))
def test_readme_lists_exactly_the_settings(heading: str):
    rows, expected = readme_tables()[heading], EXPECTED[heading]
    assert sorted(set(expected) - set(rows)) == [], f"settings without a README row ({heading})"
    assert sorted(set(rows) - set(expected)) == [], f"README rows no class defines ({heading})"


@pytest.mark.parametrize("heading", list(EXPECTED))
def test_readme_defaults_are_the_code_defaults(heading: str):
    rows, expected = readme_tables()[heading], EXPECTED[heading]
    wrong = {
        env: (rows[env], expected[env])
        for env in sorted(rows.keys() & expected.keys())
        if not default_matches(rows[env], expected[env])
    }
    assert wrong == {}, f"README default vs code default ({heading})"


def test_default_rule():
    assert default_matches("`40`", 40) and not default_matches("`20`", 40)
    assert default_matches("`0.2`", 0.2) and default_matches("`1`", 1.0)
    assert default_matches("unset", None) and not default_matches("unset", "")
    assert default_matches("empty", SecretStr("")) and not default_matches("empty", None)
    assert default_matches("`.state`", Path(".state"))
    assert default_matches("a long request", "x" * PROSE_DEFAULT_MIN_LENGTH)
    assert not default_matches("a short request", "short")


def test_nested_settings_read_with_the_delimiter():
    class Inner(BaseModel):
        model: str = "m"
        retries: int = 5

    class Nested(BaseSettings):
        model_config = {"env_nested_delimiter": "__"}
        llm: Inner = Inner(retries=3)
        port: int = 1

    assert env_defaults(Nested) == {"LLM__MODEL": "m", "LLM__RETRIES": 3, "PORT": 1}
