"""Interface facts in plain Python (no Amaranth): the hard IPs' descriptors and
streams, the register map. The gateware, the testbenches, the virtual board,
the driver's generated header and the host library read them from here.
"""
