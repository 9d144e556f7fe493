# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

# `sam build` runs these (BuildMethod: makefile). Each function is only the Lambda code and the
# torch-free model modules it shares with serving; its third-party packages are one layer.
# Bytecode ships with the code: Lambda's /var/task and /opt are read-only, so a module without it is
# compiled again at every cold start (numpy 288 -> 88 ms, pydicom 754 -> 194 ms). Unchecked hashes,
# because the zip's two-second timestamps would make timestamp-checked bytecode look stale.
COMPILE := python3.11 -m compileall -q -j 0 --invalidation-mode unchecked-hash
build-ClassifyBatchFunction build-ApiFunction build-DeadLetterFunction build-ReportPushFunction:
	cp -r functions "$(ARTIFACTS_DIR)/"
	python3.11 -m model.builder.package "$(ARTIFACTS_DIR)"  # model/core, the floor the Lambdas run
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
	$(COMPILE) "$(ARTIFACTS_DIR)"

build-DependenciesLayer:
	python3.11 -m pip install -q -r functions/requirements.txt -t "$(ARTIFACTS_DIR)/python" \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all:
	python3.11 tools/prune_layer.py "$(ARTIFACTS_DIR)/python"
	find "$(ARTIFACTS_DIR)/python" -name __pycache__ -prune -exec rm -rf {} +
	$(COMPILE) "$(ARTIFACTS_DIR)/python"

.PHONY: venv test unit integration e2e screenshots client lint format typecheck model model-cpu demo local invoke serve bench validate sam-build clean redrive build-ClassifyBatchFunction build-ApiFunction build-DeadLetterFunction build-ReportPushFunction build-DependenciesLayer

venv: $(STAMP)

# torch/torchvision are ranges in pyproject.toml; pip takes the wheels this machine has on disk.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[train,aws,dev,spark]'
	touch $@

# The web client (client/): its dependencies from the lock file, then a production build in client/dist.
CLIENT_SOURCES := $(shell find client/src client/public -type f 2>/dev/null) client/index.html client/vite.config.ts \
	client/tsconfig.json
client/node_modules/.package-lock.json: client/package-lock.json
	cd client && npm ci --no-audit --no-fund
	touch $@

client/dist/index.html: client/node_modules/.package-lock.json $(CLIENT_SOURCES)
	cd client && npm run build

client: client/dist/index.html

# Python tests (unit, integration and, with Chromium present, the browser tests) and the client's Vitest tests.
test: $(STAMP) client/dist/index.html
	cd client && npx vitest run
	$(PY) -m pytest -q

# The web client in headless Chromium (Debian's package) against the local stack; screenshots in build/e2e/.
e2e: $(STAMP) client/dist/index.html
	$(PY) -m pytest -q tests/e2e

# The docs' screenshots at 320, 768 and 1280 px, from a fresh browser test run.
screenshots: e2e
	$(PY) -m tools.screenshots

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

lint: $(STAMP) client/node_modules/.package-lock.json
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd client && npx tsc -b && npm run lint

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Served artifacts (TorchScript, ONNX, model.tar.gz) of the bundled default model, with its lung-field network.
build/model/model.tar.gz: model/default/model.safetensors model/default/lungs.safetensors model/default/int8.json $(STAMP)
	$(PY) -m model.builder --checkpoint $< --lungs model/default/lungs.safetensors --int8 model/default/int8.json \
		--out build/model

model: build/model/model.tar.gz

# The bundled model for a CPU endpoint (EndpointMode=serverless, or a CPU instance): ONNX Runtime and its
# dependencies for the container's Python ride in code/wheels/, installed offline at start-up, so the
# endpoint serves the int8 graph. CONTAINER_PYTHON: the PyTorch inference image's Python.
CONTAINER_PYTHON ?= 3.12
model-cpu: $(STAMP) build/model/model.tar.gz
	rm -rf build/wheels && $(VENV)/bin/pip download --quiet --only-binary=:all: --implementation cp \
		--python-version $(CONTAINER_PYTHON) --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
		--dest build/wheels "onnxruntime>=1.18"
	$(PY) -m model.builder --checkpoint model/default/model.safetensors --lungs model/default/lungs.safetensors \
		--int8 model/default/int8.json --wheels build/wheels --out build/model-cpu

# The package the local stack serves: the bundled model's, or any other, e.g. the one training.adapt
# wrote for a site: MODEL=runs/site/model.tar.gz make local
MODEL ?= build/model/model.tar.gz

demo: $(STAMP) $(MODEL)
	$(PY) -m local_stack.demo --model $(MODEL)

# FAULTS="endpoint_5xx=0.2,s3_timeout=0.1,crash=0.05" SEED=1 VISIBILITY=2 make local
# PACS=ORTHANC@127.0.0.1:4242 make local   (push each DICOM SR to that PACS)
local: $(STAMP) $(MODEL) client/dist/index.html
	$(PY) -m local_stack.stack --model $(MODEL) --client client/dist $(if $(FAULTS),--faults $(FAULTS)) \
		$(if $(SEED),--seed $(SEED)) $(if $(VISIBILITY),--visibility-timeout $(VISIBILITY)) \
		$(if $(PACS),--pacs-destination '$(PACS)')

# Move parked dead letters (already recorded `failed`) back to the ingest queue of a running `make local`.
redrive: $(STAMP)
	$(PY) -m local_stack.redrive

# Replay an event file as `sam local invoke` does: make invoke FUNCTION=ApiFunction EVENT=events/api-classify.json
invoke: build/model/model.tar.gz
	$(PY) -m local_stack.invoke $(FUNCTION) -e $(EVENT) $(if $(SEED),--seed $(SEED))

serve: $(STAMP) $(MODEL)
	$(PY) -m model.serving.serve --model $(MODEL) --port 8080

bench: $(STAMP)
	$(PY) bench/inference.py

validate: $(STAMP)
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

sam-build: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
