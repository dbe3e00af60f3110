# The two commands in the README: `make demo` (main job) and `make test` (test suite).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install demo test lint format bench browser postgres

install:
	$(PIP) install -q -e '.[dev,server]'

demo: install
	automl search --config examples/image_cnn.yaml --experiment demo --json runs/demo.json

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	lint-imports

# headless Chromium for the MLflow UI test: installed with apt-get when missing and root
browser:
	bash scripts/install-browser.sh

# PostgreSQL's initdb and pg_ctl for the shared MLflow server test: installed with apt-get when
# missing and root
postgres:
	bash scripts/install-postgres.sh

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

test: install browser postgres lint
	$(PYTHON) -m pytest -q

bench: install
	$(PIP) install -q -e '.[dev,bench]'
	$(PYTHON) -m benchmarks.run --out benchmarks/results

.PHONY: docs
docs:
	$(PYTHON) -m orchestrator.configdoc --write docs/config.md
