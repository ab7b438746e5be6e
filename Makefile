# dmoe: `make run` and `make test` are the two commands of the README's quick start.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# TensorFlow's C++ start-up log (CUDA factories, cuInit on a machine without a GPU) is noise here;
# dmoe's own errors are Python exceptions. Set TF_CPP_MIN_LOG_LEVEL=0 to see it.
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: run test docs bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,distributed,xarray,docs]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dmoe run --out results/default

# The docs build is part of the tests: a broken docstring, a dangling reference or a notebook
# that no longer runs fails it.
test: docs
	$(BIN)/python -m pytest -q

# HTML site in docs/_build/html: the pages, the executed notebooks, the API reference;
# warnings are errors.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info docs/_build docs/api docs/jupyter_execute
