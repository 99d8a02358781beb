# Two entry points for a fresh machine: `make demo` and `make test` (style checks, then the tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kwaflux-installed
# Every folder that holds Python, and the C++ the formatter owns (bridge/ofx/ is the OFX ABI as
# declared from the spec; it is formatted too, so one style holds everywhere).
PY_DIRS  := kwaflux_ofx tests bench python reliability
CXX_SRCS := $(wildcard bridge/*.cpp bridge/*.h bridge/*/*.cpp bridge/*/*.h reliability/*.cpp)

.PHONY: demo test check lint format install bench clean

$(STAMP): pyproject.toml CMakeLists.txt $(wildcard bridge/*.cpp bridge/*.h bridge/*/*.h bridge/*/*.cpp bridge/*/*.c bridge/CMakeLists.txt bridge/exports.map bridge/resources/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kwaflux_ofx.demo demo_out

# Style first (fast, and a failure says which file), then the whole suite.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(PY_DIRS)
	$(VENV)/bin/ruff check $(PY_DIRS)
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SRCS)

check: lint
	$(PY) -m pytest -q

test: check

# Rewrite the files the style checks would reject.
format: $(STAMP)
	$(VENV)/bin/ruff format $(PY_DIRS)
	$(VENV)/bin/clang-format -i $(CXX_SRCS)

bench: $(STAMP)
	$(PY) -m bench.engine

clean:
	rm -rf build demo_out
