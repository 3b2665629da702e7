# Set-up and entry points. Everything installs into .venv at the repository root.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo docs test test-slow lint bench clean

# The dev extra's stable-baselines3 (for the SB3-compatibility tests) needs PyTorch: install its CPU
# build first (a local wheel if the machine keeps one, else PyTorch's CPU index), a tenth of the default
# CUDA build's download; if neither is reachable, pip falls back to the default build.
TORCH_CPU ?= $(or $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl)),torch --index-url https://download.pytorch.org/whl/cpu)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_CPU) || echo "no CPU build of torch reachable; the dev install takes the default one"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train S²AC(phi,theta) on the 3-goal multigoal env with the quick preset (a few minutes on 2 cores),
# then write metrics, TensorBoard logs, learning curves, trajectories and particles on Q contours to runs/demo.
demo: install
	rm -rf runs/demo
	$(VENV)/bin/s2ac train --algo s2ac --preset quick --env s2ac/MultiGoal3-v0 --seed 0 --out runs/demo

# The documentation site, built strictly: a broken link, a page missing from the nav or a missing API
# object fails it (serve it with: .venv/bin/mkdocs serve).
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .cache/site

# The docs build, then unit, integration and smoke tests on every core (slow tests are deselected;
# pytest's exit 5 = no tests). tests/conftest.py keeps a persistent XLA compilation cache in .cache/jax-tests.
test: install docs
	$(VENV)/bin/pytest -q -n auto --dist loadgroup || [ $$? -eq 5 ]

test-slow: install
	$(VENV)/bin/pytest -q -n auto --dist loadgroup -m slow || [ $$? -eq 5 ]

lint: install
	$(VENV)/bin/ruff check s2ac tests
	$(VENV)/bin/ruff format --check s2ac tests

bench: install
	$(VENV)/bin/s2ac bench update --algo s2ac --obs-dim 11 --act-dim 3 --batch 100 --particles 10 --svgd-steps 3

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .cache
