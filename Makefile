# `make demo` and `make test` set everything up on first use (.venv/ in the repository root).
# On GPU machines run `make setup-gpu` once (faiss-gpu; mmcv CUDA ops where nvcc exists): the
# variant is recorded in .venv/, and later set-ups (by `make test`, `make demo`) keep it.
# Afterwards: `source .venv/bin/activate` for the tools/ commands of README and docs/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.hirl_mm_setup_done
DEMO_CONFIG := configs/demo/hirl_simclr_tiny-resnet18_fashion-mnist.py
DEMO_WORK_DIR := work_dirs/demo
PYTEST_ARGS ?=
# mmengine imports pkg_resources, which warns on every start; keep the output readable.
export PYTHONWARNINGS := ignore:pkg_resources is deprecated

.PHONY: setup setup-gpu demo test bench docs clean-demo

setup: $(SETUP_STAMP)

setup-gpu:
	PYTHON=$(PYTHON) bash tools/setup_env.sh --gpu

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

# The documentation site (docs/en, Sphinx + myst-parser), warnings as errors. The docs tools
# (requirements/docs.txt) are installed into .venv/ on first use.
DOCS_BUILD := docs/en/_build/html
docs: setup
	$(PY) -c "import sphinx, myst_parser, sphinx_rtd_theme" 2>/dev/null || \
		$(VENV)/bin/uv pip install --python $(PY) -r requirements/docs.txt
	rm -rf $(DOCS_BUILD)
	$(PY) -m sphinx -W --keep-going -q -b html docs/en $(DOCS_BUILD)
	@echo "docs: $(DOCS_BUILD)/index.html"

clean-demo:
	rm -rf $(DEMO_WORK_DIR)
