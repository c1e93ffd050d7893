"""Fixtures shared by the files that run the local engine through the hub."""

from __future__ import annotations

import pytest

from imputehub.engine.demo import DemoPanel, simulate_demo_panel


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPanel:
    """The simulated demo panel, its study targets and their truth (a few seconds to make)."""
    return simulate_demo_panel(tmp_path_factory.mktemp("demo"))
