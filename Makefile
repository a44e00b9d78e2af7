# Aegis Catalog. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test lint format install migrate bench clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

install: $(INSTALLED)

migrate: $(INSTALLED)
	$(PY) manage.py migrate --noinput

# The embedded default stack: SQLite, Valkey, an OpenBao dev server with the transit key,
# an RQ worker and the web server. Stop with Ctrl-C.
run: $(INSTALLED)
	$(PY) -m aegis_catalog.devstack

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

format: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Performance figures (README "Performance"); SIZE_GIB=0.25 for a quick run. Needs wrk for
# the web figure: installed with apt-get when missing (as .ci/run does for chromium).
SIZE_GIB ?= 1
bench: $(INSTALLED)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(PY) bench/run.py --size-gib $(SIZE_GIB)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
