"""`make sim`: run the endpoint in a simulated PCIe hierarchy and tell the story.

    python -m hw.sim.demo [--data-width 256]
"""

import argparse
import os
import sys
import tempfile
import time

from hw.params import EndpointParams
from hw.sim.tb.runner import run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-width", type=int, default=256, choices=(64, 128, 256, 512))
    args = ap.parse_args(argv)
    params = EndpointParams(data_width=args.data_width)
    print("p2p-dax: the endpoint RTL (Amaranth -> Verilog -> Icarus) behind a simulated "
          "PCIe switch (cocotbext-pcie)\n")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.txt")
        try:
            run_dir = run("test_demo", params, extra_env={"P2P_DAX_REPORT": report})
        except AssertionError as e:
            print(f"FAILED: {e}")
            return 1
        with open(report) as f:
            print(f.read(), end="")
    print(f"\nAll checks passed in {time.monotonic() - t0:.0f} s. Log: {run_dir / 'sim.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
