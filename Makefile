# p2p-dax: one entry point for set-up, simulation, tests and builds. `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help setup sim test verilog synth boards bitstream flash bench driver vm vm-test vm-bench clean

PY := .venv/bin/python
STAMP := .venv/.setup-stamp
# Build parameters for `verilog` and `synth`, passed on when set: make verilog DATA_WIDTH=128
BUILD_ARGS := $(if $(DATA_WIDTH),--data-width $(DATA_WIDTH)) \
              $(if $(BAR2_SIZE),--bar2-size $(BAR2_SIZE)) \
              $(if $(MEM_SIZE),--mem-size $(MEM_SIZE))
# Kernel for `driver` and `vm`: Debian's 6.1, 6.12 or 7.3 (Debian 13's backports, with P2PDMA)
KERNEL ?= 6.1

help:
	@echo "make setup     create .venv with the project and its tools, install iverilog and the VM tools (scripts/setup.sh)"
	@echo "make sim       run the simulation demo: root complex, switch, two endpoints, peer traffic"
	@echo "make test      run the test suite on both cores (pytest -n 2)"
	@echo "make verilog   write build/verilog/p2p_dax_endpoint.v  [DATA_WIDTH= BAR2_SIZE= MEM_SIZE=]"
	@echo "make synth     open-source synthesis, resource use vs the part  [BOARD= or the variables above]"
	@echo "make boards    the boards BOARD= can name, one a line"
	@echo "make bitstream the Vivado build of BOARD's bitstream; without Vivado, the build tree"
	@echo "               and the command that finishes it (build/bitstream/BOARD/)"
	@echo "make flash     load BOARD's bitstream with openFPGALoader  [PERSIST=1: write its flash; DRY_RUN=1]"
	@echo "make bench     run the simulation benchmarks"
	@echo "make driver    build driver/p2p_dax.ko for a Debian kernel, print its path  [KERNEL=6.1]"
	@echo "make vm        run CMD in a QEMU VM with the driver loaded, in the host's root file system"
	@echo "               make vm KERNEL=6.12 CMD='daxctl list'  [VM_ARGS='--no-driver --params ...']"
	@echo "               BOARD=virtual: with the board's RTL behind QEMU's p2p-dax-board device"
	@echo "make vm-test   run the VM tests (tests/test_vm_*.py) [KERNELS=all or 6.1,7.3] [IOMMU=1]"
	@echo "               KERNELS=all: every VM test on every kernel; IOMMU=1: all with the IOMMU translating"
	@echo "make vm-bench  in a VM: NVMe -> dax beside NVMe -> RAM (C tool), then p2pdax bench,"
	@echo "               plot in build/vm-bench/  [KERNEL=6.12, or 6.1,7.3, or all]"
	@echo "               IOMMU=1: the IOMMU translating, the C tool's bench with the NVMe"
	@echo "               translated and then untranslated in the same boot"
	@echo "               BOARD=virtual: what the virtual board costs, per path (s/MiB, accesses/s)"
	@echo "make clean     remove build/"

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py host/_native_build.py driver/p2p_dax_regs.h driver/p2p_dax_ioctl.h scripts/setup.sh
	@bash scripts/setup.sh

sim: setup
	$(PY) -m hw.sim.demo

# pytest on both cores; it exits 5 when it collected no test: a failure here.
run_pytest = $(PY) -m pytest -n 2 $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

test: setup
	@$(call run_pytest)

verilog: setup
	@mkdir -p build/verilog
	$(PY) -m hw.top -o build/verilog/p2p_dax_endpoint.v $(strip $(BUILD_ARGS))

synth: setup
	$(PY) -m hw.flow.synth $(strip $(if $(BOARD),--board $(BOARD)) $(BUILD_ARGS))

boards: setup
	@$(PY) -m hw.flow.boards

bitstream: setup
	$(if $(BOARD),,@echo "make bitstream: name a board: make bitstream BOARD=... (make boards lists them)" >&2; exit 2)
	@$(PY) -m hw.flow.bitstream --board $(BOARD)

flash: setup
	$(if $(BOARD),,@echo "make flash: name a board: make flash BOARD=... (make boards lists them)" >&2; exit 2)
	@$(PY) -m hw.flow.flash --board $(BOARD) $(if $(PERSIST),--persist) $(if $(DRY_RUN),--dry-run)

bench: setup
	@$(PY) -m hw.sim.bench

driver: setup
	@$(PY) -m vm build-driver --kernel $(KERNEL)

# CMD goes to the guest's shell verbatim ($ and quotes included). make exits 2
# when CMD fails; its "Error N" line has the command's exit code.
vm: setup
	$(if $(value CMD),,@echo "make vm: give a command: make vm KERNEL=6.1 CMD='...'" >&2; exit 2)
	$(if $(filter-out virtual,$(BOARD)),@echo "make vm: BOARD=$(BOARD): a VM has only BOARD=virtual (the simulated board)" >&2; exit 2)
	@$(PY) -m vm run --kernel $(KERNEL) $(if $(BOARD),--board $(BOARD)) $(VM_ARGS) -- '$(subst ','\'',$(value CMD))'

vm-bench: setup
	$(if $(filter-out virtual,$(BOARD)),@echo "make vm-bench: BOARD=$(BOARD): a VM has only BOARD=virtual (the simulated board)" >&2; exit 2)
	@$(PY) -m $(if $(BOARD),vm.virtual_bench,vm.bench) --kernel $(KERNEL) \
		$(if $(IOMMU),$(if $(BOARD),,--iommu))

# The release matrix: make vm-test KERNELS=all, then again with IOMMU=1.
vm-test: setup
	$(if $(filter-out 0 1,$(IOMMU)),@echo "make vm-test: IOMMU=$(IOMMU): give IOMMU=1 (on) or leave it out" >&2; exit 2)
	@$(if $(KERNELS),export P2P_DAX_VM_KERNELS=$(KERNELS);) $(if $(IOMMU),export P2P_DAX_VM_IOMMU=$(IOMMU);) \
		$(call run_pytest,tests/test_vm_*.py)

clean:
	rm -rf build
