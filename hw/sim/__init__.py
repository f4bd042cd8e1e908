"""cocotb test modules of the endpoint (test_*.py, never imported by one
another), `make sim` (demo.py) and `make bench` (bench.py); their shared
infrastructure is in hw.sim.tb."""
