# `make demo`, `make test` and `make lint` each set up .venv (once) and run. PY picks the interpreter.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench fuzz mutate clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,video,serve,openvino,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/superres demo -o demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff (lint rules and formatting) and pyright, as configured in pyproject.toml; all three run, any finding fails
lint: $(STAMP)
	status=0; \
	$(BIN)/ruff check src tests benchmarks scripts || status=1; \
	$(BIN)/ruff format --check src tests benchmarks scripts || status=1; \
	$(BIN)/pyright || status=1; \
	exit $$status

# the scripts behind the README's figures (they need ../shared/data)
bench: $(STAMP)
	$(BIN)/python benchmarks/check_matlab_resize.py --sets Set5 Set14 B100
	$(BIN)/python benchmarks/bicubic_baselines.py
	$(BIN)/python benchmarks/correction_speed.py
	$(BIN)/python benchmarks/png_speed.py
	$(BIN)/python benchmarks/inference_speed.py
	$(BIN)/python benchmarks/train_throughput.py

# a longer fuzz run than the test suite's (tests/fuzz_driver.py), over several seeds
fuzz: $(STAMP)
	for seed in 1 2 3 4 5; do $(BIN)/python tests/fuzz_driver.py --cases 1000 --seed $$seed || exit 1; done

# mutation testing of the imaging, inference and model-loading code ([tool.mutmut] in pyproject.toml)
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet 'mutmut>=3.3,<4'
	$(BIN)/mutmut run --max-children 2; $(BIN)/mutmut results | tail -n 5

clean:
	rm -rf $(VENV) demo-output mutants
