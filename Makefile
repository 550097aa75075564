# The README's commands. Everything installs into .venv with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export CHAINER_WARN_VERSION_MISMATCH := 0

.PHONY: run test lint chromium mpi openmpi nu java gpu-check

$(VENV)/.web: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.web requirements-train.txt requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Data-parallel training under mpiexec (train.py --communicator) and its tests.
$(VENV)/.mpi: $(VENV)/.dev requirements-mpi.txt
	$(BIN)/pip install -q -r requirements-mpi.txt
	touch $@

mpi: $(VENV)/.mpi openmpi

# GPU training: CuPy and NCCL for the CUDA of requirements-gpu.txt.
$(VENV)/.gpu: $(VENV)/.dev requirements-gpu.txt
	$(BIN)/pip install -q -r requirements-gpu.txt
	touch $@

# On a GPU box: a short train.py run on GPU 0, stopped, resumed across devices, exported and timed
# (bench/gpu_check.py); prints one JSON verdict, exit status 0 when every check passes.
gpu-check: $(VENV)/.gpu
	$(BIN)/python -m bench.gpu_check --device 0

run: $(VENV)/.web
	$(BIN)/gunicorn app:app

# $(call debian,CHECK,PACKAGES,SKIPPED): unless the shell test CHECK passes, install Debian's
# PACKAGES when root (CI, a fresh machine), else say which tests are skipped without them.
define debian
	@if $(1); then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(2); \
	else \
		echo "warning: Debian's $(2) is missing; run 'sudo make $@', or $(3)"; \
	fi
endef

# The browser test drives Debian's Chromium through Playwright (Playwright's own browser download
# needs the open internet).
chromium:
	$(call debian,[ -x /usr/bin/chromium ],chromium,the browser test is skipped)

# mpi4py's wheel needs an MPI library and mpiexec: Debian's Open MPI.
openmpi:
	$(call debian,command -v mpiexec >/dev/null,openmpi-bin libopenmpi-dev,the multi-process tests are skipped)

# The Nu HTML checker for the page's validity test: Debian's Java (installed when root) and the
# checker's jar from the npm registry (the vnu-jar package carries it; its download script is not run).
VNU_JAR := .nu/node_modules/vnu-jar/build/dist/vnu.jar
nu: java
	@if [ -f $(VNU_JAR) ]; then :; \
	elif command -v npm >/dev/null; then \
		npm install -q --no-save --no-package-lock --ignore-scripts --prefix .nu vnu-jar@26.9.27; \
	else \
		echo "warning: npm is missing, so is the Nu HTML checker; the HTML validity test is skipped"; \
	fi

java:
	$(call debian,command -v java >/dev/null,default-jre-headless,the HTML validity test is skipped)

test: $(VENV)/.dev chromium mpi nu
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
