"""The driver's files that need no kernel: versions agree, the udev rule names
the driver. (Building and running it: tests/test_vm_*.py.)"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "driver"


def test_dkms_version_is_the_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dkms = dict(re.findall(r'^(\w+)="([^"]*)"$', (DRIVER / "dkms.conf").read_text(), re.M))
    assert dkms["PACKAGE_VERSION"] == version, "update driver/dkms.conf's PACKAGE_VERSION"
    assert dkms["PACKAGE_NAME"] == "p2p_dax"


def test_udev_rule_matches_only_this_driver():
    rules = [line for line in (DRIVER / "60-p2p-dax.rules").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules == ['SUBSYSTEM=="dax", KERNEL=="dax*", DRIVERS=="p2p_dax", '
                     'GROUP="p2pdax", MODE="0660"']
    module = (DRIVER / "p2p_dax.c").read_text()
    assert re.search(r"\.name\s*=\s*KBUILD_MODNAME", module)    # DRIVERS== matches this name
    assert "obj-m += p2p_dax.o" in (DRIVER / "Kbuild").read_text()
