# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench install chromium fuzz switch-tools

$(BIN)/telbill: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/telbill

install: $(BIN)/telbill

demo: install
	$(BIN)/telbill demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint chromium switch-tools
	$(BIN)/pytest -n 2 --dist loadgroup

# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser
# download). Installed here when missing; where that cannot be done they skip (CI=true: fail).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium could not be installed: the browser tests will skip"

bench: install
	$(BIN)/python benchmarks/run_all.py

# tests/switch drive real calls: SIPp (sip-tester) through Kamailio (with http_client and
# jansson) into telbill. Installed here from Debian's packages when missing; where that cannot
# be done the switch tests skip (CI=true: fail).
SWITCH_PACKAGES := kamailio kamailio-utils-modules kamailio-extra-modules sip-tester
switch-tools:
	@{ command -v kamailio && command -v sipp && \
		test -f /usr/lib/x86_64-linux-gnu/kamailio/modules/http_client.so && \
		test -f /usr/lib/x86_64-linux-gnu/kamailio/modules/jansson.so; } >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq $(SWITCH_PACKAGES) >/dev/null; } || \
		echo "$(SWITCH_PACKAGES) could not be installed: the switch tests will skip"

# Generated-input tests with fresh random seeds and larger budgets (`make test` and CI run
# them derandomised: tests/conftest.py). A failure prints its seed: pin it as an example.
FUZZ_EXAMPLES ?= 500
FUZZ_SCHEMATHESIS_EXAMPLES ?= 50
fuzz: install
	CI= TELBILL_HYPOTHESIS_PROFILE=fuzz TELBILL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		TELBILL_SCHEMATHESIS_EXAMPLES=$(FUZZ_SCHEMATHESIS_EXAMPLES) \
		$(BIN)/pytest -n 2 --dist loadgroup -m fuzz -p no:cacheprovider
