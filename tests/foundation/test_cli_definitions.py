"""`jstore plan | apply | list | describe`, run as the installed command against the real registry.

Bad input ends with exit code 2 and one line on stderr that says what is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.registry import Registry
from jstore.repo import FeatureRepo

ROOT = Path(__file__).resolve().parents[2]
JSTORE = Path(sys.executable).parent / "jstore"
EXAMPLE = ROOT / "examples" / "ecommerce"


def jstore(settings: Settings, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    """The `jstore` command with this test's registry database, snapshot file and lake."""
    test_env = {
        "JSTORE_PROJECT": settings.project,
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
    }
    return subprocess.run(
        [str(JSTORE), *map(str, args)],
        env={**os.environ, **test_env, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines(output: str) -> list[str]:
    return [line.rstrip() for line in output.splitlines()]


EXAMPLE_CREATED = [
    "create       entity user",
    "create       entity merchant",
    "create       source purchases",
    "create       source customers",
    "create       feature view user_purchases v1",
    "create       feature view merchant_sales v1",
    "create       feature view user_categories v1",
    "create       feature view user_big_spends v1",
    "create       feature service fraud_v1",
]


def test_plan_then_apply_then_apply_again(settings: Settings, registry: Registry):
    plan = jstore(settings, "plan", EXAMPLE)
    assert (plan.returncode, lines(plan.stdout), plan.stderr) == (0, EXAMPLE_CREATED, "")
    assert registry.list_views() == []

    applied = jstore(settings, "apply", EXAMPLE)
    assert (applied.returncode, lines(applied.stdout)) == (0, EXAMPLE_CREATED)
    assert settings.registry_snapshot.exists()

    again = jstore(settings, "apply", EXAMPLE)
    assert lines(again.stdout) == [
        line.replace("create   ", "unchanged") for line in EXAMPLE_CREATED
    ]


def test_a_changed_window_plans_and_applies_a_new_version(
    settings: Settings, registry: Registry, example_repo: FeatureRepo, tmp_path: Path
):
    registry.apply(example_repo)
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    features = repo / "features.py"
    features.write_text(
        features.read_text()
        .replace(
            'windows=["1d", "7d"]),\n        Aggregation(function="sum"',
            'windows=["1d", "14d"]),\n        Aggregation(function="sum"',
        )
        .replace('description="How much and how often a user buys."', 'description="Spending."')
    )
    plan = jstore(settings, "plan", repo)
    assert "new version  feature view merchant_sales v2" in lines(plan.stdout)
    assert "update       feature view user_purchases v1" in lines(plan.stdout)
    applied = jstore(settings, "apply", repo)
    assert "new version  feature view merchant_sales v2" in lines(applied.stdout)
    assert registry.view_versions("merchant_sales") == [1, 2]
    assert registry.get_view("user_purchases").definition.description == "Spending."


def test_list_prints_one_line_per_definition_and_filters_views(
    settings: Settings, registry: Registry, example_repo: FeatureRepo
):
    registry.apply(example_repo)
    views = jstore(settings, "list")
    assert lines(views.stdout) == [
        "merchant_sales           v1   step 1d     4 features  keys merchant_id  "
        "owner marketplace-team",
        "user_big_spends          v1   step 1h     2 features  keys user_id  owner fraud-team",
        "user_categories          v1   step 1h     2 features  keys user_id  owner fraud-team",
        "user_purchases           v1   step 1h    16 features  keys user_id  owner fraud-team",
    ]
    fraud = jstore(settings, "list", "views", "--tag", "domain=payments", "--entity", "user")
    assert [line.split()[0] for line in lines(fraud.stdout)] == ["user_purchases"]
    by_owner = jstore(settings, "list", "views", "--owner", "marketplace-team")
    assert [line.split()[0] for line in lines(by_owner.stdout)] == ["merchant_sales"]
    assert lines(jstore(settings, "list", "entities").stdout) == [
        "merchant                 keys merchant_id",
        "user                     keys user_id",
    ]
    assert lines(jstore(settings, "list", "sources").stdout) == [
        "customers                table  public.customers",
        "purchases                event  purchases",
    ]
    assert lines(jstore(settings, "list", "services").stdout) == [
        "fraud_v1                 7 features"
    ]


def test_describe_a_view_with_its_versions_and_merged_coverage(
    settings: Settings, registry: Registry, example_repo: FeatureRepo
):
    registry.apply(example_repo)
    day = datetime(2024, 5, 1, tzinfo=UTC)
    registry.add_coverage("user_purchases", 1, day.replace(hour=2), day.replace(hour=4))
    registry.add_coverage("user_purchases", 1, day, day.replace(hour=2))
    described = jstore(settings, "describe", "user_purchases")
    assert described.returncode == 0
    doc = json.loads(described.stdout)
    assert (doc["version"], doc["versions"], doc["join_keys"]) == (1, [1], ["user_id"])
    assert doc["coverage"] == [["2024-05-01T00:00:00+00:00", "2024-05-01T04:00:00+00:00"]]
    assert doc["features"][0] == {
        "name": "count_1h",
        "dtype": "int64",
        "function": "count",
        "column": None,
        "window": "1h",
    }
    assert json.loads(jstore(settings, "describe", "user_purchases@v1").stdout) == doc


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fraud_v1", {"kind": "service", "name": "fraud_v1"}),
        ("user", {"kind": "entity", "name": "user", "join_keys": ["user_id"]}),
        ("customers", {"kind": "table", "name": "customers", "table": "public.customers"}),
    ],
)
def test_describe_a_service_an_entity_or_a_source(
    settings: Settings, registry: Registry, example_repo: FeatureRepo, name, expected
):
    registry.apply(example_repo)
    doc = json.loads(jstore(settings, "describe", name).stdout)
    assert {k: doc[k] for k in expected} == expected


BAD_REPOS = {
    "bad_window.py": (
        "from jstore.model import Aggregation\n"
        "sums = Aggregation(function='sum', column='amount', windows=['1h', '0h'])\n",
        "jstore: bad_window.py: Aggregation: windows.1: '0h' must be a positive whole number "
        "of seconds",
    ),
    "syntax.py": (
        "from jstore.model import Entity\nuser = Entity(name='user'\n",
        "jstore: syntax.py: SyntaxError: '(' was never closed (syntax.py, line 2)",
    ),
    "unknown_source.py": (
        "from jstore.model import Aggregation, Entity, WindowedFeatureView\n"
        "user = Entity(name='user', join_keys=['user_id'])\n"
        "clicks = WindowedFeatureView(name='clicks', entities=['user'], source='clicks',\n"
        "    step='1h', aggregations=[Aggregation(function='count', windows=['1h'])])\n",
        "jstore: feature view 'clicks': source: unknown source 'clicks'",
    ),
}


@pytest.mark.parametrize(
    ("verb", "file"), [("plan", file) for file in BAD_REPOS] + [("apply", "unknown_source.py")]
)
def test_a_bad_repo_is_refused_with_one_line(settings: Settings, registry, tmp_path, verb, file):
    text, line = BAD_REPOS[file]
    (tmp_path / file).write_text(text)
    refused = jstore(settings, verb, tmp_path / file)
    assert (refused.returncode, refused.stdout, lines(refused.stderr)) == (2, "", [line])
    assert registry.db.list_collection_names() == []


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["describe", "nope"], "jstore: unknown feature view 'nope'"),
        (["describe", "user_purchases@v9"], "jstore: unknown feature view 'user_purchases' v9"),
        (["describe", "user_purchases@9"], "jstore: user_purchases@9: a version is written @v<N>"),
        (
            ["list", "bogus"],
            "jstore: Invalid value for KIND: choose views, entities, sources or services",
        ),
        (["list", "--tag"], "jstore: Option '--tag' requires an argument."),
        (["frobnicate"], "jstore: No such command 'frobnicate'."),
        (["describe"], "jstore: Missing argument 'name'."),
        (["plan", "/no/such/repo"], "jstore: /no/such/repo: no Python feature definitions found"),
        (["plan", "README.md"], "jstore: README.md: no Python feature definitions found"),
    ],
)
def test_bad_input_ends_with_one_line_and_exit_code_2(
    settings: Settings, registry: Registry, example_repo: FeatureRepo, args, line
):
    registry.apply(example_repo)
    refused = jstore(settings, *args)
    assert (refused.returncode, refused.stdout, lines(refused.stderr)) == (2, "", [line])


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"JSTORE_PROJECT": "Shop"}, "jstore: setting JSTORE_PROJECT: String should match pattern"),
    ],
)
def test_bad_settings_are_one_line(settings: Settings, env, line):
    """(An unreachable registry: tests/foundation/test_cli_servers_down.py.)"""
    refused = jstore(settings, "list", env=env)
    assert refused.returncode == 2
    [message] = lines(refused.stderr)
    assert message.startswith(line)
