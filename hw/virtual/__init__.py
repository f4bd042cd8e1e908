"""The virtual board: the endpoint's RTL behind QEMU's p2p-dax-board device.

PARAMS are the build parameters it runs with unless told otherwise: BAR2
of 64 MiB, all of it memory (a model on the endpoint's AXI4 memory port,
hw/sim/tb/memory.py), so third-party clients run at their usual sizes.
"""

PARAMS = {"memory": "axi", "bar2_size": 64 << 20, "mem_size": 64 << 20}
