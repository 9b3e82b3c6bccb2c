"""The virtualenv of `make test-vllm` holds what pip chooses, installed by uv."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gpu_venv() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_venv", ROOT / ".ci" / "gpu_venv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pip_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No PIP_* variable of the machine's."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    return monkeypatch


def wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": "\n".join(
            ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
            + [f"Requires-Dist: {r}" for r in requires]
        )
        + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        sha = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={sha.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def test_pip_settings_become_uv_transport(
    gpu_venv: ModuleType, tmp_path: Path, pip_env: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pip.conf"
    config.write_text("[global]\ncert = /global.pem\n[install]\ncert = /install.pem\n")
    pip_env.setenv("PIP_CONFIG_FILE", str(config))
    pip_env.setenv("PIP_TRUSTED_HOST", "a.example b.example:8080")
    pip_env.setenv("PIP_DEFAULT_TIMEOUT", "99")
    pip_env.setenv("PIP_PROXY", "http://proxy.example:3128")

    options, env = gpu_venv.uv_transport(gpu_venv.pip_settings())

    assert options == [
        "--system-certs",
        *("--allow-insecure-host", "a.example", "--allow-insecure-host", "b.example:8080"),
    ]
    assert env == {
        "SSL_CERT_FILE": "/install.pem",
        "UV_HTTP_TIMEOUT": "99",
        "HTTP_PROXY": "http://proxy.example:3128",
        "HTTPS_PROXY": "http://proxy.example:3128",
    }


def test_install_puts_in_what_pip_resolves(
    gpu_venv: ModuleType, tmp_path: Path, pip_env: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    wheel(links, "subpop-probe", "1.0", ["subpop-probe-dep<2"])
    wheel(links, "subpop-probe-dep", "1.0", [])
    wheel(links, "subpop-probe-dep", "2.0", [])
    pip_env.setenv("PIP_CONFIG_FILE", os.devnull)
    pip_env.setenv("PIP_NO_INDEX", "1")
    pip_env.setenv("PIP_FIND_LINKS", str(links))
    pip_env.setenv("PIP_TRUSTED_HOST", "pypi.invalid")  # also checks uv accepts the flag
    target = tmp_path / "venv"

    gpu_venv.install(target, "subpop-probe\n", tmp_path / "uv-cache", 120)

    installed = subprocess.run(
        [target / "bin" / "python", "-m", "pip", "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    versions = {d["name"]: d["version"] for d in json.loads(installed.stdout)}
    assert versions["subpop-probe"] == "1.0"
    assert versions["subpop-probe-dep"] == "1.0"  # pip's choice, not the newest
    # No bytecode at build: make test-vllm writes it for what the tests import.
    assert not list(target.glob("lib/python3.*/site-packages/subpop_probe/__pycache__/*.pyc"))
    assert (target / gpu_venv.STAMP).read_text() == "subpop-probe\n"
    # Each file named by its URL and hash, so uv fetches exactly what pip chose.
    chosen = (target / "requirements.txt").read_text().splitlines()
    assert [line.split(" @ ")[0] for line in chosen] == ["subpop-probe", "subpop-probe-dep"]
    assert all("--hash=sha256:" in line for line in chosen)


def test_prune_removes_old_pins_and_with_them_the_cache(
    gpu_venv: ModuleType, tmp_path: Path
) -> None:
    keep, old = tmp_path / "vllm-0123456789abcdef", tmp_path / "vllm-fedcba9876543210"
    for folder in (keep, old, tmp_path / gpu_venv.UV_CACHE, tmp_path / "unrelated"):
        folder.mkdir()
    (tmp_path / gpu_venv.UV_CACHE / "wheel-file").write_text("installed")
    (keep / "kept").hardlink_to(tmp_path / gpu_venv.UV_CACHE / "wheel-file")
    gpu_venv.prune(tmp_path, keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated", keep.name]
    assert (keep / "kept").read_text() == "installed"

    (tmp_path / gpu_venv.UV_CACHE).mkdir()
    gpu_venv.prune(tmp_path, keep)  # nothing old: the cache stays for the next build
    assert (tmp_path / gpu_venv.UV_CACHE).is_dir()
