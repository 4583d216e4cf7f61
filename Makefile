# JStore: `make demo` runs the whole flow on generated data, `make test` runs the test suite.
# Both set everything up first (Debian packages, the locked Python packages, the local servers).

PY := .venv/bin/python
JSTORE := .venv/bin/jstore
PYTEST := .venv/bin/pytest

.PHONY: setup services services-down services-status demo test test-unit test-fast test-e2e lint airflow serve screenshots

.venv/.setup-done: scripts/setup.sh uv.lock pyproject.toml jstore/quality/web_assets/package-lock.json
	bash scripts/setup.sh
	touch $@

setup: .venv/.setup-done

services: setup
	$(PY) scripts/services.py up

services-down:
	$(PY) scripts/services.py down

services-status:
	$(PY) scripts/services.py status

demo: services
	$(JSTORE) demo

# The whole suite, slow end-to-end tests included (what CI runs).
test: services
	$(PYTEST) -q

# The tests that need no server and no JVM (model, layout, orchestration, DAG parsing): no
# server is started or needed.
test-unit: setup
	$(PYTEST) -q -m "not integration and not spark and not e2e"

# Unit and integration tests without the slow end-to-end subset.
test-fast: services
	$(PYTEST) -q -m "not e2e"

test-e2e: services
	$(PYTEST) -q -m e2e

# A PNG of each web UI page (and a Data Docs page) in docs/screenshots/, taken by the UI's
# browser test over the demo repo in headless Chromium (docs/ui.md).
screenshots: services
	JSTORE_SCREENSHOTS=docs/screenshots $(PYTEST) -q -m e2e tests/ui/test_ui_browser.py

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

serve: services
	$(JSTORE) serve

# Airflow standalone with JStore's DAGs and UI plugin: http://127.0.0.1:8085 (login printed).
airflow: services
	bash scripts/airflow.sh
