"""Every ```python block of docs/client.md runs, in order, against a real API over the example
repo, with `user_purchases` rows published for the latest hour (as the page says), and prints
what its comment lines show (compared without whitespace)."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from datetime import datetime
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.online import materialize
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from serving.app import create_app
from tests.online.online_helpers import HOUR, publish_rows
from tests.serving.conftest import READ_KEY
from tests.serving.live_api import live_api

PAGE = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
BOUGHT = {"count": 2, "sum": 37.5, "avg": 18.75, "max": 25.0}
"""u000001's values of each function, in every window; u000002's are below."""
BOUGHT_ONCE = {"count": 1, "sum": 12.0, "avg": 12.0, "max": 12.0}


def examples() -> list[str]:
    return BLOCK.findall(PAGE.read_text())


@pytest.fixture
def purchases_published(
    api_settings: Settings, registry: Registry, example_repo: FeatureRepo, now_step: datetime
):
    """Published up to the current step (`now_step`, read when the test starts)."""
    registry.apply(example_repo)
    view = registry.get_view("user_purchases")
    rows = [
        {"user_id": user, "feature_ts": now_step - HOUR}
        | {f.name: values[f.function] for f in view.features}
        for user, values in (("u000001", BOUGHT), ("u000002", BOUGHT_ONCE))
    ]
    publish_rows(
        api_settings, registry, view, now_step - view.definition.checkpoint_period, now_step, rows
    )
    materialize(api_settings, registry)


def test_the_page_has_examples() -> None:
    assert len(examples()) >= 8


def test_every_example_of_the_client_page_runs_and_prints_what_it_shows(
    api_settings: Settings, purchases_published: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace: dict = {}
    with live_api(create_app(api_settings)) as url:
        monkeypatch.setenv("JSTORE_API_URL", url)
        monkeypatch.setenv("JSTORE_API_KEY", READ_KEY)
        for number, code in enumerate(examples(), 1):
            printed = io.StringIO()
            with redirect_stdout(printed):
                exec(compile(code, f"docs/client.md, python block {number}", "exec"), namespace)
            shown = [line.removeprefix("#") for line in code.splitlines() if line.startswith("#")]
            assert without_spaces(printed.getvalue()) == without_spaces("".join(shown)), number
        namespace["client"].close()

    assert namespace["online"].to_dict() == {
        "user_id": ["u000001", "u000002", "u000003"],
        "count_1h": [2, 1, 0],
        "amount_sum_1d": [37.5, 12.0, 0.0],
    }
    assert namespace["training_df"]["user_purchases__count_1h"].tolist() == [1, 2, 0]


def without_spaces(text: str) -> str:
    return "".join(text.split())
