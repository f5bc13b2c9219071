# Each target sets up what it needs on first use (scripts/setup.sh is idempotent).
PY := .venv/bin/python
SETUP := bash scripts/setup.sh

.PHONY: setup test test-fast lint docs benchmark figures stats speed examples clean

setup:
	$(SETUP)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# ruff's linter and formatter, configured in pyproject.toml
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# the documentation site, strictly: a broken link or reference fails the build (site/)
docs: setup
	.venv/bin/mkdocs build --strict

benchmark: setup
	.venv/bin/l2l-taskmix benchmark --dataset mtop-long --out runs/mtop-long

figures: setup
	$(PY) benchmarks/readme_figures.py

stats: setup
	.venv/bin/l2l-taskmix stats --dataset mtop-long

speed: setup
	$(PY) benchmarks/speed.py

clean:
	rm -rf .venv .pytest_cache .hypothesis *.egg-info site
