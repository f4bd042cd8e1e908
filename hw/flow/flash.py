"""Load a board's bitstream with openFPGALoader (`make flash BOARD=... [PERSIST=1]`).

    python -m hw.flow.flash --board NAME [--persist] [--bitstream FILE] [--dry-run]

Without --persist the bitstream goes over JTAG into the FPGA's configuration
memory (lost at power-off); with --persist it is written to the board's
configuration flash. The cable and part, or openFPGALoader's board name,
come from the board definition (hw/flow/boards.py). After a load, the host
still holds the old device: `p2pdax rescan ADDRESS` (root) removes it and
rescans its bridge so that the new design enumerates without a reboot.

openFPGALoader is Debian's package (apt-get install openfpgaloader).
"""

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from hw.flow import boards

ROOT = Path(__file__).resolve().parents[2]


def default_bitstream(board):
    """Where `make bitstream BOARD=...` leaves the board's bitstream."""
    return ROOT / "build" / "bitstream" / board.name / "p2p_dax.bit"


def command(board, bitstream, persist=False):
    """The openFPGALoader command line for the board, as a list."""
    if persist and board.name == "vcu118":
        raise ValueError("vcu118: writing its dual-QSPI configuration flash through "
                         "openFPGALoader is not supported by this flow (it needs a "
                         "primary and a secondary image); load it without PERSIST=1, or "
                         "write the flash with Vivado's hardware manager")
    return ["openFPGALoader", *board.openfpgaloader, *(["-f"] if persist else []),
            str(bitstream)]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hw.flow.flash", description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", required=True, help=f"one of {', '.join(boards.BOARDS)}")
    ap.add_argument("--persist", action="store_true",
                    help="write the configuration flash instead of loading over JTAG")
    ap.add_argument("--bitstream", type=Path, help="default: build/bitstream/BOARD/p2p_dax.bit")
    ap.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    args = ap.parse_args(argv)
    try:
        board = boards.get(args.board)
        cmd = command(board, args.bitstream or default_bitstream(board), args.persist)
    except ValueError as e:
        ap.error(str(e))
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    if not Path(cmd[-1]).exists():
        print(f"flash: no bitstream at {cmd[-1]}: build it with make bitstream "
              f"BOARD={board.name}, or give --bitstream", file=sys.stderr)
        return 1
    if not shutil.which(cmd[0]):
        print("flash: openFPGALoader is not installed: apt-get install openfpgaloader",
              file=sys.stderr)
        return 1
    rc = subprocess.run(cmd).returncode
    if rc:
        print(f"flash: openFPGALoader failed (exit {rc}): check the cable and that the board "
              "is powered", file=sys.stderr)
        return rc
    print("loaded; now make the host see the new design: sudo p2pdax rescan ADDRESS "
          "(the board's PCI address, from lspci)" if not args.persist else
          "flash written; the board loads it at its next power-on or PROG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
