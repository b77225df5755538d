# The README's two commands: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := $(VENV)/.torch
ARGS   ?=

.PHONY: demo test study bench docs $(VENV)

demo: $(VENV)
	$(PY) recipes/nmnist_demo.py $(ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest -q $(ARGS)

# The paper's ablation and p sweep with statistics (docs/results.md); resumes if interrupted.
study: $(VENV)
	$(PY) recipes/study.py $(ARGS)

# MSG against depth (issue 19; docs/results.md): plain nets of 2-10 LIF layers, ResNet18s, the probe.
study-depth: $(VENV)
	$(PY) recipes/study_depth.py $(ARGS)

bench: $(VENV)
	$(PY) bench/lif.py
	$(PY) bench/train_step.py

docs: $(VENV)/.installed-test  # the test extra holds the docs extra
	$(PY) -m mkdocs build --strict

# demo, study and bench need every extra ('.[all]'); make test the test extra, which holds it.
$(VENV): $(VENV)/.installed-all

# torch and torchvision are pinned and installed first: an unpinned resolve can pull a
# different torch (gigabytes of wheels) before pip settles on a version.
$(TORCH): Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	touch $@

# One stamp per extra of pyproject.toml: .venv/.installed-all, .venv/.installed-test.
$(VENV)/.installed-%: pyproject.toml $(TORCH)
	$(PY) -m pip install -e '.[$*]'
	touch $@
