# The two commands (see README): `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment first, from nothing but Python 3.11.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU torch wheel may lie in a local wheel folder; pip ignores a folder that is absent.
export PIP_FIND_LINKS ?= /opt/wheels

.PHONY: venv demo test fuzz reliability lint protos check-protos agent-install-check docker clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/edgescore demo

# The store's suite also runs against a throwaway PostgreSQL cluster (installed from Debian's
# package when missing); tools/with_postgres.sh starts and removes it. tools/with_prometheus.sh
# installs Debian's prometheus package when missing, for the test that has a real Prometheus
# scrape the server (tests/test_observability.py starts and removes that Prometheus itself).
# tools/with_ray.sh starts a local Ray cluster (a head and a worker node, Ray from PyPI with the
# [dev] extra) for the compute plane's Ray tests.
test: venv
	$(PY) tools/gen_protos.py --check
	$(VENV)/bin/ruff check .
	RAY_BIN=$(VENV)/bin/ray bash tools/with_postgres.sh bash tools/with_prometheus.sh \
		bash tools/with_ray.sh $(PY) -m pytest -q -ra --durations=25

# Fresh random examples, 50 times as many, for every parser and the SDK (about 5 minutes).
fuzz: venv
	HYPOTHESIS_PROFILE=random EDGESCORE_FUZZ_SCALE=50 $(PY) -m pytest -q tests/test_spec_fuzz.py

# The reliability campaign against real servers and agents on loopback (bounded: about 15 minutes
# on 2 cores); its figures and findings go to reliability-report/ (docs/reliability.md has the
# last ones). `make test` runs its short version (tests/test_reliability_short.py).
reliability: venv
	$(PY) -m benchmarks.reliability --out reliability-report

lint: venv
	$(VENV)/bin/ruff check .

protos: venv
	$(PY) tools/gen_protos.py

check-protos: venv
	$(PY) tools/gen_protos.py --check

docker:
	docker build -t edgescore-server .

clean:
	rm -rf $(VENV) build *.egg-info
