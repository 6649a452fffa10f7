# Set-up, demo and tests. `make demo` and `make test` install what they need first.
PYTHON ?= python3
PYTEST_WORKERS ?= 2
STAMP := .make/installed

# Debian packages the tests use: cross compilers and QEMU for the embedded targets, clang
# for the second-compiler check, valgrind for the memory checks, chromium to load the build
# report in a headless browser, graphviz to lay out the report's network graph.
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc-aarch64-linux-gnu \
                libc6-dev-arm64-cross qemu-user clang valgrind chromium graphviz
TOOLS := arm-none-eabi-gcc qemu-system-arm aarch64-linux-gnu-gcc qemu-aarch64 clang valgrind chromium dot

.PHONY: install toolchains demo test test-long golden bench bench-int8 bench-devices gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(MAKE) toolchains
	$(PYTHON) -m pip install --quiet -e ".[test]"
	mkdir -p .make && touch $(STAMP)

toolchains:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then echo "toolchains: all present"; \
	else \
	  echo "toolchains: installing (missing:$$missing)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

demo: install
	codegen build examples/lenet.py

test: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q

test-long: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q --long

# Rewrite the golden snapshots of the emitted files (tests/golden/) after a deliberate change.
golden: install
	$(PYTHON) tests/golden.py --update

bench: install
	$(PYTHON) bench/run.py

# int8 convolutions (bench shapes a-i) against onnxruntime's quantized models: bench/results/int8_x86.md.
bench-int8: install
	$(PYTHON) bench/int8_host.py

# Instructions per multiply-accumulate on the emulated Cortex-M boards (QEMU -icount, deterministic).
bench-devices: install
	$(PYTHON) bench/devices.py --zoo

gpu-check: install
	$(PYTHON) bench/gpu_check.py

clean:
	rm -rf .make codegen_out build *.egg-info
