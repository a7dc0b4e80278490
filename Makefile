# Every target runs inside .venv, which `make install` creates from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/ermsolve solve instances/iris_petal_12.csv --model models/relu2_l1.toml --out demo-certificate.json
	$(BIN)/ermsolve verify demo-certificate.json instances/iris_petal_12.csv

test: install
	$(BIN)/python -m pytest -q

# make bench SUITE=smoke for a quick run; results and report go to bench-out/SUITE.
SUITE ?= standard
JOBS ?= 2

bench: install
	$(BIN)/ermsolve bench --suite $(SUITE) --jobs $(JOBS) --out bench-out/$(SUITE)

clean:
	rm -rf $(VENV) build *.egg-info demo-certificate.json
