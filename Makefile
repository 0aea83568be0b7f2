# `make demo` and `make test` set everything up on first use (.venv/ in the repository root).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.hirl_mm_setup_done
DEMO_CONFIG := configs/demo/hirl_simclr_tiny-resnet18_fashion-mnist.py
DEMO_WORK_DIR := work_dirs/demo
PYTEST_ARGS ?=
# mmengine imports pkg_resources, which warns on every start; keep the output readable.
export PYTHONWARNINGS := ignore:pkg_resources is deprecated

.PHONY: setup demo test bench clean-demo

setup: $(SETUP_STAMP)

$(SETUP_STAMP): tools/setup_env.sh setup.py requirements/*.txt
	PYTHON=$(PYTHON) bash tools/setup_env.sh

demo: setup
	rm -rf $(DEMO_WORK_DIR)
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR)
	$(PY) tools/analysis_tools/hirl_report.py $(DEMO_CONFIG) \
		$$(cat $(DEMO_WORK_DIR)/last_checkpoint)
	$(PY) tools/analysis_tools/visualize_hierarchy.py $(DEMO_CONFIG) \
		$$(cat $(DEMO_WORK_DIR)/last_checkpoint)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: setup
	$(PY) tools/analysis_tools/benchmark_hirl.py

clean-demo:
	rm -rf $(DEMO_WORK_DIR)
