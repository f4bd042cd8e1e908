"""Gateware of the p2p-dax PCIe endpoint.

Importing this package must not import Amaranth: `hw.regmap` is used by the
host library on machines without the HDL toolchain.
"""
