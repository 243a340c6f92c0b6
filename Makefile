# `make demo`: set up and run the offline demo.  `make test`: set up and run the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; without the pin a dependency could pull a CUDA build of several GB.
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(PY) -m pip install -q --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps demo test bench results clean

setup: $(VENV)/.installed system-deps

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[weights,dev]"
	touch $@

system-deps:
	@command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q espeak-ng; }
	@# the review page's browser tests: Playwright drives the OS's Chromium (its own download is not used)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

demo: setup
	$(VENV)/bin/rlhf-asr demo

test: setup
	$(VENV)/bin/ruff check src tests finetune.py
	$(VENV)/bin/ruff format --check src tests finetune.py
	@# one worker per core, at most 4 (the bench tests peak at a few GB each); files stay whole on one worker
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

# Both write into ignored folders; copy into docs/ deliberately (docs/results.md says how).
bench: setup
	$(VENV)/bin/rlhf-asr bench --output bench_output/tiny_b8_l64.json

results: setup
	$(VENV)/bin/rlhf-asr results --output_dir results_output

clean:
	rm -rf $(VENV) demo_output results_output bench_output
