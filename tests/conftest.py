"""Shared test configuration.

- Every test session builds into its own cache (CODEGEN_CACHE) so runs never share state.
- ``--long`` enables the long sweeps (marker ``long``); without it they skip with that reason.
- Tools a group of tests needs are checked by ``require_tool``, which skips with the reason,
  except under CI (CODEGEN_CI=1), where a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False, help="run the long sweeps (marker 'long')")


def pytest_configure(config):
    # visible to test modules at import time, also in xdist workers (which get the same options)
    if config.getoption("--long"):
        os.environ["CODEGEN_LONG"] = "1"


def long_run() -> bool:
    return os.environ.get("CODEGEN_LONG") == "1"


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long sweep: run with --long (make test-long)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _private_build_cache(tmp_path_factory):
    old = os.environ.get("CODEGEN_CACHE")
    os.environ["CODEGEN_CACHE"] = str(tmp_path_factory.mktemp("codegen-cache"))
    yield
    if old is None:
        os.environ.pop("CODEGEN_CACHE", None)
    else:
        os.environ["CODEGEN_CACHE"] = old


def require_tool(*names: str) -> None:
    """Skip (or, under CI, fail) when a command-line tool is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    message = f"missing tool(s): {', '.join(missing)} (make toolchains installs them)"
    if os.environ.get("CODEGEN_CI"):
        pytest.fail(message + "; CI must not skip this")
    pytest.skip(message)
