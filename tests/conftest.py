"""Shared fixtures: paths to the shipped files and a helper to write small CSVs."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ROOT / "instances"
MODELS = ROOT / "models"


@pytest.fixture
def write_csv(tmp_path):
    """Write `text` to a CSV file in a temporary folder and return its path."""

    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
