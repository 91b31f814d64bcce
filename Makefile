# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

# Debian packages the datasets, the audio tower and the browser tests read.
APT_PACKAGES := openclipart-svg dataset-fashion-mnist espeak-ng chromium

.PHONY: install demo test fuzz bench clean apt

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

# torch is pinned in the same pip command as everything that depends on it.
$(VENV)/.stamp-install: $(VENV)/.stamp-venv pyproject.toml requirements/base.txt requirements/test.txt
	$(PIP) install -q -r requirements/base.txt -r requirements/test.txt -e ".[towers,datasets,train,server,scale,test]"
	touch $@

install: $(VENV)/.stamp-install

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: install apt
	$(VENV)/bin/jointspace demo

test: install apt
	$(PY) -m pytest -q -p no:cacheprovider

fuzz: install apt
	JOINTSPACE_HYPOTHESIS_PROFILE=fuzz JOINTSPACE_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_readers.py tests/test_fuzz_metrics.py

# arguments for every bench script, e.g. make bench BENCH_ARGS=--quick
BENCH_ARGS ?=

bench: install apt
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs idx .pytest_cache
