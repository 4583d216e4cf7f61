""".env.example lists every setting of jstore/config.py with its default."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from jstore.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
LINE = re.compile(r"^(?:# )?(JSTORE_[A-Z0-9_]+)=(.*)$")


def listed() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = LINE.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is listed twice"
            found[match.group(1)] = match.group(2)
    return found


def test_every_setting_is_listed_once_after_a_comment():
    expected = {f"JSTORE_{name.upper()}" for name in Settings.model_fields}
    assert set(listed()) == expected
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if LINE.match(line):
            assert lines[i - 1].startswith("# "), f"{line} has no comment above it"


def test_the_listed_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("JSTORE_")]:
        monkeypatch.delenv(name)
    assert Settings(_env_file=ENV_EXAMPLE) == Settings(_env_file=None)
