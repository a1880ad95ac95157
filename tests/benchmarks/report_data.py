"""The synthetic results documents the report tests read (hand-made test data, not measurements)."""

from __future__ import annotations

import json

from conftest import DATA

RESULTS = sorted((DATA / "results").glob("*.json"))


def load_docs():
    return [json.loads(p.read_text()) for p in RESULTS]
