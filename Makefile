# InferenceKit — the two commands of the README quick start.
#   make run   install missing system packages, build release, run the main job
#   make test  install missing system packages, run the whole test suite
SHELL := /bin/bash
SWIFT ?= swift
SYSTEM_PACKAGES := libopenblas-dev ocl-icd-opencl-dev opencl-headers pocl-opencl-icd pkg-config
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Warnings are errors in this repository's own builds (not imposed on clients).
STRICT := -Xswiftc -warnings-as-errors

.PHONY: run test deps build build-release bench clean

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

clean:
	rm -rf .build
