"""Where the training tests find ../shared/data (a module of its own: ``from conftest import`` found
tests/'s conftest instead whenever pytest had imported that one first)."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (tests read ../shared/data beside the repository)")
    return path
