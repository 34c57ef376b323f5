# InferenceKit — the two commands of the README quick start.
#   make run   install missing system packages, build release, run the main job
#   make test  install missing system packages, run the whole test suite
SHELL := /bin/bash
SWIFT ?= swift
SYSTEM_PACKAGES := libopenblas-dev ocl-icd-opencl-dev opencl-headers pocl-opencl-icd pkg-config
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Warnings are errors in this repository's own builds (not imposed on clients).
STRICT := -Xswiftc -warnings-as-errors

.PHONY: run test sanitize deps build build-release bench clean

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

test: deps
	$(SWIFT) build --build-tests $(STRICT)
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
