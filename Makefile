# Two commands for a newcomer: `make demo` runs the main job end to end, `make test` runs the
# checks CI runs. Both create the virtual environment on first use.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
DEMO_DIR ?= demo-output
# Optional extras to install beside the tools; CI adds spark to run the Spark UDF test.
EXTRAS ?= dev

export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export BENTOML_DO_NOT_TRACK := True

.PHONY: install demo test lint typecheck unit experiments clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/leadscore demo --out $(DEMO_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
