# The two commands a new user needs; both create .venv and install the pinned environment.
#   make run    the main job: the local sweep (cpu preset) ending in the frontier table
#   make test   lint and the whole test suite
#   make check  lint and the quick tests (the developer's loop)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PY_DIRS := betavae sweeps analysis tests bench cluster

.PHONY: run train test check lint bench browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python sweeps/beta_frontier.py

train: $(STAMP)
	$(BIN)/python -m betavae.train --steps 2000 --objective beta --beta 4 \
		--out runs/train-$$(date +%Y%m%d-%H%M%S)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

test: lint browser
	$(BIN)/python -m pytest --durations=15

# The developer's loop: lint and every test not marked slow (~2.5 minutes on 2 cores).
check: lint
	$(BIN)/python -m pytest -q -rs -m "not slow"

# The report test opens report.html in Debian's chromium: installed here when this user may
# (root or passwordless sudo), and then a failed install fails `make test`; without root or
# sudo that one test is skipped and says why (as under `make check`, which installs nothing).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "chromium: not root, no sudo: the browser test will be skipped"; exit 0; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && \
	    $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || \
	  { echo "error: chromium could not be installed (apt-get as $$(id -un)): the report's browser test cannot run" >&2; exit 1; }; }

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
