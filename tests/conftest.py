import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def private_memory(tmp_path, monkeypatch):
    """Every test gets its own memory folder; the user's memory is never touched."""
    path = tmp_path / "memory"
    monkeypatch.setenv("KERNELWRIGHT_MEMORY__PATH", str(path))
    return path


@pytest.fixture(autouse=True)
def no_tracking(monkeypatch):
    """Runs are not tracked unless a test asks (tests/integration/test_tracking.py does)."""
    monkeypatch.setenv("KERNELWRIGHT_TRACKING__ENABLED", "false")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
