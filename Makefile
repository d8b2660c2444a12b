# The two commands of the README: `make quickstart` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On a CPU-only Linux box torch must be this CPU build, installed first and kept pinned; on a CUDA machine use
# e.g. `make TORCH_PIN=torch==2.13.0 PIP_EXTRA='--index-url https://download.pytorch.org/whl/cu128' install`.
TORCH_PIN ?= torch==2.13.0
PIP_EXTRA ?=
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install quickstart test test-faults lint format clean gpu-check faults

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(PIP_EXTRA) "$(TORCH_PIN)"
	echo "$(TORCH_PIN)" > $(VENV)/torch-pin.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(VENV)/torch-pin.txt -c constraints.txt -e ".[dev,deepspeed]"
	touch $(STAMP)

install: $(STAMP)

# The quickstart sweep, then the main command (ZeroMamba on CUB) in smoke form: its tiny model on the synthetic
# data, 2 trials x 1 epoch, in results/_smoke, which the leaderboard skips (it skips _-prefixed folders).
# --resume makes a second `make quickstart` finish or reuse these sweeps; delete results/quickstart to redo it.
quickstart: $(STAMP)
	$(BIN)/zsl-bench data synth --out data/synth
	$(BIN)/zsl-bench sweep --space quickstart.yaml --resume
	$(BIN)/zsl-bench sweep --space zeromamba_cub.yaml --smoke --results results/_smoke --resume
	$(BIN)/zsl-bench leaderboard --results results --out results/leaderboard.md
	$(BIN)/zsl-bench leaderboard --results results --format html --out results/site

# Every test but the slowest fault-injection scenarios (marker `faults`), which `make test-faults` runs; CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not faults"

test-faults: $(STAMP)
	$(BIN)/python -m pytest -m faults

# The GPU acceptance check (issue 21): one command, one JSON object; `--dry-run` runs the same parts on CPU.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

# The fault-injection figures (issue 19): bad inputs, kills in write windows, killed sweep drivers, a lost Ray node.
faults: $(STAMP)
	$(BIN)/python benchmarks/faults.py --sweeps

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/style_check.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) data/synth .pytest_cache .ruff_cache
