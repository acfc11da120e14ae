# One-command setup: `make test` and `make demo` create .venv on first use.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_RUN ?= demo

.PHONY: setup test demo clean-venv

setup: $(STAMP)

# The stamp depends on the files that define the environment, so a second run is a no-op.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "posecore needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[notebooks,export,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(PY) -m posecore.demo --run $(DEMO_RUN)

clean-venv:
	rm -rf $(VENV)
