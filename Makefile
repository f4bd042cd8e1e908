# p2p-dax: one entry point for set-up, simulation, tests and builds. `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help setup sim test verilog synth bench clean

PY := .venv/bin/python
STAMP := .venv/.setup-stamp
# Build parameters for `verilog` and `synth`, passed on when set: make verilog DATA_WIDTH=128
BUILD_ARGS := $(if $(DATA_WIDTH),--data-width $(DATA_WIDTH)) \
              $(if $(BAR2_SIZE),--bar2-size $(BAR2_SIZE)) \
              $(if $(MEM_SIZE),--mem-size $(MEM_SIZE))

help:
	@echo "make setup     create .venv with the project and its tools, install iverilog (scripts/setup.sh)"
	@echo "make sim       run the simulation demo: root complex, switch, two endpoints, peer traffic"
	@echo "make test      run the test suite on both cores (pytest -n 2)"
	@echo "make verilog   write build/verilog/p2p_dax_endpoint.v  [DATA_WIDTH= BAR2_SIZE= MEM_SIZE=]"
	@echo "make synth     open-source UltraScale+ synthesis, resource use vs xcvu9p  [same variables]"
	@echo "make bench     run the simulation benchmarks"
	@echo "make clean     remove build/"

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	@bash scripts/setup.sh

sim: setup
	$(PY) -m hw.sim.demo

# pytest exits 5 when it collected no test: that is a failure here.
test: setup
	@$(PY) -m pytest -n 2; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

verilog: setup
	@mkdir -p build/verilog
	$(PY) -m hw.bar_endpoint -o build/verilog/p2p_dax_endpoint.v $(strip $(BUILD_ARGS))

synth: setup
	$(PY) -m hw.synth $(strip $(BUILD_ARGS))

bench: setup
	@$(PY) -m hw.sim.bench

clean:
	rm -rf build
