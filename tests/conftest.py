"""Shared fixtures. Tests that need ../shared/data skip when it is absent (a user's machine)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ARTIFACTS_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is absent)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_artifacts_home(tmp_path_factory):
    """Weights a user keeps in ~/.cache/artifacts must not change what the tests see
    (subprocesses inherit the variable)."""
    old = os.environ.get("ARTIFACTS_HOME")
    os.environ["ARTIFACTS_HOME"] = str(tmp_path_factory.mktemp("artifacts-home"))
    yield
    if old is None:
        os.environ.pop("ARTIFACTS_HOME", None)
    else:
        os.environ["ARTIFACTS_HOME"] = old


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """A small seeded manipulation set (Tp/, Gt/, Au/) from photos shipped with scikit-image."""
    from artifacts.datasets.manipulation import write_dataset

    root = tmp_path_factory.mktemp("generated")
    write_dataset(root, n=8, seed=123, n_authentic=2)
    return root


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `artifacts` command (as installed: `python -m artifacts`) in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "artifacts", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=REPO)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a test module of tiny tensors (faster, and on a shared 2-core machine
    two OpenMP threads competing with other jobs were ~20x slower); restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
