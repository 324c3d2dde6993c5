# Two entry points: `make demo` and `make test`. Both create .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean st-env

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# sentence-transformers with its ONNX / OpenVINO backends, in its own environment (its optimum pins an
# older transformers): `e5kit bench` runs those rows there. `make test` tries to build it; when that
# fails, the tests that need it skip and say so.
ST_VENV := .venv-st
ST_STAMP := $(ST_VENV)/.installed
$(ST_STAMP): benchmarks/st-env.txt
	test -x $(ST_VENV)/bin/python || $(PY) -m venv $(ST_VENV)
	$(ST_VENV)/bin/pip install -q --upgrade pip
	$(ST_VENV)/bin/pip install -q torch==2.13.0
	$(ST_VENV)/bin/pip install -q -r benchmarks/st-env.txt
	touch $(ST_STAMP)

st-env: $(ST_STAMP)

demo: $(STAMP)
	$(BIN)/python -m e5kit.demo

test: $(STAMP)
	$(MAKE) --no-print-directory st-env > $(VENV)/st-env.log 2>&1 || echo "make st-env failed (see $(VENV)/st-env.log): its bench tests skip"
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(ST_VENV) build src/*.egg-info
