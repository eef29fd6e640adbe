# udun: two commands do everything on a fresh Debian 12 machine.
#   make demo   the whole story, CA -> token -> certificate -> signed payment -> API
#   make test   the test suite (real SoftHSM tokens, real openssl)
#   make bench  figures, one `name value unit` line each
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench setup lint

setup:
	@VENV=$(VENV) bash scripts/bootstrap.sh

demo: setup
	@$(VENV)/bin/udun demo

test: setup
	@$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	@$(PY) bench/run.py $(BENCH_ARGS)

lint: setup
	@$(VENV)/bin/lint-imports
	@$(VENV)/bin/mypy pkicore config keystore ca signer webapi adminapi udun
