# Two commands on a fresh Linux machine: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data
APT_GET := $(shell command -v apt-get 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: run test venv web system-deps lint typecheck bench clean docker node-deps soak

run: venv web
	$(BIN)/rtc-server serve --demo --host $(HOST) --port $(PORT) --data-dir $(DATA)

venv: $(STAMP)
$(STAMP): pyproject.toml signaling/storage/_walvfs.c
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,fast]'
	@touch $(STAMP)

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

web: web/node_modules/.package-lock.json
	cd web && npm run build

# Binaries the tests drive for real: redis-server and Debian's Chromium (never a downloaded browser);
# a C compiler and the headers of SQLite and Python for the WAL write shim (signaling/storage/_walvfs.c).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v cc >/dev/null || missing="$$missing gcc libc6-dev"; \
	[ -f /usr/include/sqlite3.h ] || missing="$$missing libsqlite3-dev"; \
	[ -f "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing="$$missing python3-dev"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v node >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ -n "$(APT_GET)" ]; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing"; exit 1; fi; \
	fi

node-deps: tests/node/node_modules/.package-lock.json
tests/node/node_modules/.package-lock.json: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund

lint: venv
	$(BIN)/ruff check signaling rtc_server tests bench
	$(BIN)/mypy

test: system-deps venv web node-deps
	@$(BIN)/python -c "import signaling.storage._walvfs" 2>/dev/null || $(BIN)/pip install -q -e '.[test,fast]'
	$(BIN)/ruff check signaling rtc_server tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: system-deps venv web
	$(BIN)/python -m bench

# tests/reliability at soak sizes (RTC_SOAK=1: longer storms, more kills, more rounds); prints FIGURE lines.
soak: system-deps venv web
	RTC_SOAK=1 $(BIN)/python -m pytest tests/reliability -q -s -p no:cacheprovider

docker:
	docker build -t rtc-engage .

clean:
	rm -rf $(VENV) web/node_modules web/dist tests/node/node_modules
