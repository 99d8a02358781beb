# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kwaflux-installed

.PHONY: demo test install bench lint clean

$(STAMP): pyproject.toml CMakeLists.txt $(wildcard bridge/*.cpp bridge/*.h bridge/*/*.h bridge/*/*.cpp bridge/*/*.c bridge/CMakeLists.txt bridge/exports.map bridge/resources/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kwaflux_ofx.demo demo_out

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/engine.py

lint: $(STAMP)
	$(VENV)/bin/ruff check kwaflux_ofx tests bench python

clean:
	rm -rf build demo_out
