"""Great Expectations plumbing: one context per quality folder per process, and a checkpoint run.

The context is ephemeral: creating it costs milliseconds and writes no config file. Suites,
validation definitions and checkpoints live in memory, so that two processes validating runs
of the same view at once (a backfill) never replace each other's suite mid-run; only what the
Data Docs index lists across processes is kept on disk: the validation results, under
`<lake>/quality/gx/validations/`. The Data Docs site itself is `<lake>/quality/` (`index.html`,
one page per validation run under `validations/<view>__v<N>/<compute run>/<time>/`, the
suites under `expectations/`).
"""

from __future__ import annotations

from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import great_expectations as gx
import pandas as pd
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
)
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context import EphemeralDataContext
from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig
from great_expectations.exceptions import DataContextError

from jstore.quality.offline_assets import make_offline
from jstore.quality.report_templates import share_compiled_templates

STORES = "gx"
"""The folder of the site where GX keeps its raw validation results (the index lists them)."""
SITE = "jstore"
DATASOURCE = "staged"
BATCH = "staged_run"


@lru_cache
def data_context(quality_dir: Path) -> EphemeralDataContext:
    share_compiled_templates()  # each report template compiled once per process
    stores_dir = quality_dir / STORES

    def on_disk(class_name: str, folder: str) -> dict:
        return {
            "class_name": class_name,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(stores_dir / folder),
            },
        }

    def in_memory(class_name: str) -> dict:
        return {"class_name": class_name, "store_backend": {"class_name": "InMemoryStoreBackend"}}

    config = DataContextConfig(
        stores={
            "expectations_store": in_memory("ExpectationsStore"),
            "validation_results_store": on_disk("ValidationResultsStore", "validations"),
            "checkpoint_store": in_memory("CheckpointStore"),
            "validation_definition_store": in_memory("ValidationDefinitionStore"),
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(quality_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas(DATASOURCE)
    return context


def run_checkpoint(
    quality_dir: Path,
    suite: gx.ExpectationSuite,
    frame: pd.DataFrame,
    run_name: str,
    index_columns: list[str],
) -> tuple[ExpectationSuiteValidationResult, Path]:
    """Validate `frame` with `suite` and render its Data Docs page; returns the result (its
    expectations in suite order) and the page.

    Failed map expectations list up to 20 of their rows by `index_columns` (the keys and
    feature_ts): SUMMARY, not COMPLETE, so a run with many bad rows keeps a small result.
    """
    context = data_context(quality_dir)
    suite = _replace(context.suites, suite)
    datasource = context.data_sources.get(DATASOURCE)
    try:
        asset = datasource.get_asset(suite.name)
    except LookupError:
        asset = datasource.add_dataframe_asset(suite.name)
    try:
        batch = asset.get_batch_definition(BATCH)
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe(BATCH)
    validation = _replace(
        context.validation_definitions,
        gx.ValidationDefinition(name=suite.name, data=batch, suite=suite),
    )
    checkpoint = _replace(
        context.checkpoints,
        gx.Checkpoint(
            name=suite.name,
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": [c for c in index_columns if c in frame],
            },
        ),
    )
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name)
    )
    ((key, result),) = outcome.run_results.items()
    position = {expectation.id: i for i, expectation in enumerate(suite.expectations)}
    result.results.sort(key=lambda r: position.get(r.expectation_config.id, len(position)))
    (site,) = context.get_docs_sites_urls(resource_identifier=key, site_names=[SITE])
    page = Path(unquote(urlparse(site["site_url"]).path))
    suite_pages = (quality_dir / "expectations").rglob("*.html")
    make_offline(quality_dir, [page, quality_dir / "index.html", *suite_pages])
    return result, page


def _replace(collection: Any, item: Any) -> Any:
    """Put `item` in a context collection; `add_or_update` compares every expectation pairwise,
    which takes seconds, so the old one is deleted and the new one added instead."""
    with suppress(DataContextError):
        collection.delete(item.name)
    return collection.add(item)
