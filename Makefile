# One-command setup: `make test` and `make demo` create .venv on first use, from requirements.lock.
PYTHON ?= python3
# torch is the one package outside the lock: the CPU wheel by default; CUDA / NPU users swap this
# spec only (docs/devices.md: "The locked environment")
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_RUN ?= demo
# `make lock`: pip-compile in a venv of its own; LOCK_FLAGS=--upgrade (or --upgrade-package NAME)
# moves pins, without it the pins in requirements.lock are kept and only new needs are added
LOCK := requirements.lock
LOCK_VENV := .venv-lock
PIP_TOOLS_SPEC ?= pip-tools==7.6.2
LOCK_FLAGS ?=

.PHONY: setup test lint demo lock clean-venv docs-images

setup: $(STAMP)

# The stamp depends on the files that define the environment, so a second run is a no-op.
# Every package but torch comes from the lock, hash-checked; torch then finds its own
# dependencies already installed at the locked versions; posecore is installed without touching them.
$(STAMP): pyproject.toml $(LOCK) Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "posecore needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Refresh requirements.lock (every dependency of posecore's extras, torch's own dependencies, pip
# and setuptools, exact versions with the hashes of every published file) and environment.yml's pins.
lock:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q "$(PIP_TOOLS_SPEC)"
	printf '%s\n' "$(TORCH_SPEC)" pip "setuptools>=64" | CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q $(LOCK_FLAGS) \
	    --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras \
	    --unsafe-package torch \
	    --extra notebooks --extra export --extra test --extra lint -o $(LOCK) pyproject.toml -
	{ sed '/^ *# pins below: written by make lock/q' environment.yml; \
	  echo '      - $(TORCH_SPEC)'; \
	  awk '/^[A-Za-z0-9]/ {print "      - " $$1}' $(LOCK); \
	  echo '      - -e .'; } > environment.yml.tmp && mv environment.yml.tmp environment.yml

# The suite in TEST_WORKERS processes (pytest-xdist; a test file stays in one process, so its module
# fixtures are built once): `make test TEST_WORKERS=0` runs it in this process alone
TEST_WORKERS ?= auto
test: setup
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile tests

# ruff (pinned in requirements.lock; configured in pyproject.toml): the lint rules, and the format
# the tree is kept in (`$(PY) -m ruff format .` applies it)
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup
	$(PY) -m posecore.demo --run $(DEMO_RUN)

# docs/images/ from the demo run (runs the demo first when outputs/$(DEMO_RUN) lacks its figures);
# the pose browser is photographed in JupyterLab by Debian's chromium (apt-get install chromium)
docs-images: setup
	$(PY) docs/make_images.py --run $(DEMO_RUN)

clean-venv:
	rm -rf $(VENV)
