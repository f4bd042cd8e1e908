"""Checkers of an endpoint's UltraScale+ interfaces against the PCIe rules:
rules.py (the spec, pure Python), monitors.py (fed with integers per clock
edge), adapters.py (cocotb: sampling a DUT's buses into the monitors)."""
