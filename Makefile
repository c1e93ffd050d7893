# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

# Debian packages the hub needs at run time, and the extra ones its tests need.
APT_RUN := beagle bcftools tabix jq curl
# libarchive13: the C library that decrypts Michigan result zips (through libarchive-c).
APT_RUN += libarchive13
APT_TEST := htslib-test bcftools tabix
# jq: the sapporo WES test peer's run script reads its run requests with it.
APT_TEST += jq
# zip: the Michigan test server encrypts its result zips with `zip -P`, as Cloudgene does.
APT_TEST += zip
# chromium: the browser tests (Playwright for Python drives Debian's chromium; no download).
APT_TEST += chromium
# systemd: systemd-analyze checks the units in deploy/systemd.
APT_TEST += systemd

# pytest in parallel, one process per core (pytest-xdist); a test file stays in one process,
# so its module-scoped fixtures (simulated panels, servers) are made once.
PYTEST_ARGS ?= -n auto --dist loadfile

# Code that ruff checks (bench/ may not exist yet in a checkout).
PY_DIRS := $(wildcard src tests bench scripts)

.PHONY: run test check lint format typecheck deps deps-test uv migration screenshots clean

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

deps: uv
	@scripts/ensure-apt.sh $(APT_RUN)
	@$(UV) sync --frozen --no-dev --quiet

deps-test: uv
	@scripts/ensure-apt.sh $(APT_RUN) $(APT_TEST)
	@$(UV) sync --frozen --quiet
	@$(UV) sync --frozen --quiet --project tests/peers/sapporo
	@$(UV) sync --frozen --quiet --project tests/peers/wes_service

# The venv's own command, not `uv run`: Ctrl-C in the terminal reaches the hub once (uv would
# forward a second SIGINT, which uvicorn takes as "force exit" and shuts down half-way).
run: deps
	.venv/bin/imputehub serve

lint: deps-test
	$(UV) run --frozen ruff format --check $(PY_DIRS)
	$(UV) run --frozen ruff check $(PY_DIRS)

typecheck: deps-test
	$(UV) run --frozen mypy src

check: lint typecheck

test: check
	$(UV) run --frozen pytest $(PYTEST_ARGS)

format: deps-test
	$(UV) run --frozen ruff format $(PY_DIRS)
	$(UV) run --frozen ruff check --fix $(PY_DIRS)

# The README's pictures of the web pages, taken by the browser tests themselves.
screenshots: deps-test
	IMPUTEHUB_SCREENSHOT_DIR=docs/screenshots $(UV) run --frozen pytest -p no:cacheprovider tests/e2e/web

migration: deps-test
	$(UV) run --frozen python scripts/make_migration.py "$(MESSAGE)"

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
