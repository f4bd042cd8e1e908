"""Gateware of the p2p-dax PCIe endpoint, and what describes, builds and
simulates it.

    hw.params, hw.spec   plain Python: build parameters, interface facts, register map
    hw.bar_endpoint      the endpoint (BarEndpoint), composed of hw.core's blocks
    hw.phy               hard-IP adapters (the 7-series shim); hw.top puts one in front
    hw.flow              boards, hard-IP Tcl, bitstream, flash, synthesis
    hw.sim, hw.sim.tb    cocotb test modules and their infrastructure
    hw.virtual           the virtual board (QEMU device and its simulation side)

Importing this package must not import Amaranth: `hw.spec.regmap` is used by the
host library on machines without the HDL toolchain (tests/test_layout.py checks).
"""
