"""Testbench infrastructure: the topology every cocotb test builds, the
hard-IP models, the bus peers, the PCIe rule checkers, request helpers and
the runner. The cocotb test modules (hw/sim/test_*.py) use these and never
each other.
"""
