# udun: two commands do everything on a fresh Debian 12 machine.
#   make demo   the whole story, CA -> token -> certificate -> signed payment -> API
#   make test   the test suite (real SoftHSM tokens, real openssl), once on SQLite and once
#               on a throwaway PostgreSQL server; TEST_DBS=sqlite for one engine only
#   make bench  figures, one `name value unit` line each
VENV ?= .venv
PY := $(VENV)/bin/python
TEST_DBS ?= sqlite postgresql

.PHONY: demo test bench setup lint

setup:
	@VENV=$(VENV) bash scripts/bootstrap.sh

demo: setup
	@$(VENV)/bin/udun demo

# Each engine's run ends with its own pytest summary; the target fails if either failed.
test: setup
	@status=0; for db in $(TEST_DBS); do \
	  echo "== make test: the suite on $$db"; \
	  $(PY) -m pytest -q --db $$db $(PYTEST_ARGS) || status=1; \
	done; exit $$status

bench: setup
	@$(PY) bench/run.py $(BENCH_ARGS)

lint: setup
	@$(VENV)/bin/lint-imports
	@$(VENV)/bin/mypy pkicore config keystore ca signer webapi adminapi udun
