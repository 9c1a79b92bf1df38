# RouteLab: `make run` and `make test` do all the set-up on a fresh Debian 12 machine.
BUILD ?= build
JOBS ?= $(shell nproc)
CLI := $(BUILD)/app/routelab-cli

.PHONY: setup configure build run test bench clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release > $(BUILD).configure.log 2>&1 || (cat $(BUILD).configure.log; exit 1)

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The window on its first-run model (moh-moe: heads and experts routed), training at once; without a
# display, the CLI trains the same preset, prints its routing balance and a sample.
run: build
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ -x $(BUILD)/app/routelab ]; then $(BUILD)/app/routelab; \
	else echo "no display: training moh-moe with routelab-cli instead of the window"; \
	$(CLI) train --preset moh-moe --out runs/moh-moe --sample; fi

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/tests/routelab_bench --benchmark_min_time=0.3
	$(CLI) bench --preset seed-baseline --set model.attention.use_wo=true --json $(BUILD)/bench.json

clean:
	rm -rf $(BUILD) $(BUILD).configure.log
