# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint format migrate clean totp

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	@mkdir -p var
	DEBUG=1 DSR_DEV_OUTBOX=1 $(BIN)/python manage.py devstack $(if $(RESET),--reset)

# Dev only: the current authenticator code of a `make run` demo user (U=approver1).
totp: install
	@DEBUG=1 $(BIN)/python manage.py totp_code $(U)

# bin/ensure-browser gets a Chromium for the browser tests when there is none (apt where root).
test: install
	@bin/ensure-browser $(BIN)/playwright
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache
