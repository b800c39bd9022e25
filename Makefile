# Thin targets; the logic lives in the package. `make serve` and `make test` install what they need.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
APT_PKGS := libusb-1.0-0 libegl1 libgl1-mesa-dri libegl-mesa0 g++ chromium
HOST    ?= 127.0.0.1
PORT    ?= 8000
PYTEST_ARGS ?=

.PHONY: install system-deps serve test test-slow lint typecheck check clean lock

system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Everything comes from the lock (exact versions, sha256 checked, no dependency resolution at install
# time), so the same commit installs the same bytes on any day. The stamp remembers which lock it saw.
$(STAMP): pyproject.toml requirements/dev.lock
	$(MAKE) system-deps
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --require-hashes --no-deps -r requirements/dev.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	touch $(STAMP)

install: $(STAMP)

serve: install
	.venv/bin/crosspoint serve --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: install
	.venv/bin/mypy crosspoint export server clients

check: lint typecheck test

# Maintainers: after changing dependencies in pyproject.toml (a test says so when the lock disagrees).
lock: install
	PATH="$(CURDIR)/.venv/bin:$$PATH" $(PY) tools/lock.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
