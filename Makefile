# The README's commands. `make run` and `make test` each build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU build lies on this machine's disk; on a GPU host run `make TORCH_SPEC=torch ...` or
# install your CUDA build into .venv first.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pruneboard up

demo: $(STAMP)
	$(VENV)/bin/pruneboard train --model mlp --dataset digits --method sdprun

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check pruneboard pruning backend worker cli tests bench docs

bench: $(STAMP)
	$(PY) bench/optimizer_step.py
	$(PY) bench/ingest_metrics.py
	$(PY) bench/metrics_query.py
	$(PY) bench/sse_latency.py
	$(PY) bench/stream_load.py
	$(PY) bench/compact_speedup.py
	$(PY) bench/valley_cost.py
	$(PY) bench/compare_methods.py
	$(PY) bench/spec_cost.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
