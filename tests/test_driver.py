"""The driver's files that need no kernel: versions agree, the udev rule names
the driver. (Building and running it: tests/test_vm_*.py.)"""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

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
                     'GROUP="p2pdax", MODE="0660"',
                     'SUBSYSTEM=="misc", KERNEL=="p2p-dax[0-9]*", DRIVERS=="p2p_dax", '
                     'GROUP="p2pdax", MODE="0660"']
    module = (DRIVER / "p2p_dax.c").read_text()
    assert re.search(r"\.name\s*=\s*KBUILD_MODNAME", module)    # DRIVERS== matches this name
    assert '"p2p-dax%d"' in module                                 # KERNEL== of the DMA node
    assert "obj-m += p2p_dax.o" in (DRIVER / "Kbuild").read_text()


IOCTL_HEADER = DRIVER / "p2p_dax_ioctl.h"
STRUCTS = {"p2p_dax_info": "P2P_DAX_INFO_SIZE_VER1",
           "p2p_dax_dma_submit": "P2P_DAX_DMA_SUBMIT_SIZE_VER1",
           "p2p_dax_dma_wait": "P2P_DAX_DMA_WAIT_SIZE_VER1"}


def _ioctl_header():
    """The header's integer #defines and its struct definitions (cdef text)."""
    text = IOCTL_HEADER.read_text()
    defines = {name: int(value, 0) for name, value in
               re.findall(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)u?\b", text, re.M)}
    structs = re.findall(r"^struct \w+ \{.*?^\};", text, re.M | re.S)
    return defines, "\n".join(structs)


def test_ioctl_status_codes_are_the_engines():
    """WAIT's status values below 16 are hw/spec/regmap.py's DmaStatus, by
    name: the header's block is generated from it and must be current."""
    from hw.spec import regmap
    text = IOCTL_HEADER.read_text()
    assert text == regmap.with_uapi_status(text), (
        f"{regmap.UAPI_HEADER}'s DmaStatus block is stale: run "
        "`python -m hw.spec.regmap --update-uapi`")
    defines, _ = _ioctl_header()
    status = {name[len("P2P_DAX_DMA_STATUS_"):]: value for name, value in defines.items()
              if name.startswith("P2P_DAX_DMA_STATUS_") and value < 16}
    assert status == {s.name: s.value for s in regmap.DmaStatus}


def test_uapi_status_block_needs_its_markers():
    from hw.spec import regmap
    with pytest.raises(ValueError, match="has no DmaStatus block: put the lines"):
        regmap.with_uapi_status("#define X 1\n")


def test_ioctl_structs_parse_in_cffi_and_have_one_layout():
    """The structs parse in cffi (the host library's route), have only __u32
    and __u64 members with no implicit padding (so 32-bit callers see the same
    layout), and their sizes are the header's _SIZE_VER1 values."""
    import cffi
    defines, structs = _ioctl_header()
    ffi = cffi.FFI()
    ffi.cdef("typedef uint32_t __u32; typedef uint64_t __u64;\n" + structs)
    for name, size_define in STRUCTS.items():
        ctype = ffi.typeof(f"struct {name}")
        assert ffi.sizeof(ctype) == defines[size_define], name
        end = 0
        for field, f in ctype.fields:
            item = f.type.item if f.type.kind == "array" else f.type
            assert item.cname in ("uint32_t", "uint64_t"), f"{name}.{field}: {f.type.cname}"
            assert f.offset == end, f"{name}.{field}: implicit padding before it"
            assert f.offset % ffi.sizeof(item) == 0, f"{name}.{field}: misaligned"
            end = f.offset + ffi.sizeof(f.type)
        assert end == ffi.sizeof(ctype) and end % 8 == 0, name


def test_ioctl_header_compiles_in_user_space(tmp_path):
    """The header builds in a strict C program of its own; the ioctl numbers
    are the ones Python computes from the header (as the host library will)."""
    defines, _ = _ioctl_header()
    prog = tmp_path / "uapi.c"
    prog.write_text(f'#include "{IOCTL_HEADER}"\n#include "{IOCTL_HEADER}"\n' + r"""
#include <stdio.h>
int main(void)
{
    printf("INFO %lu %u\nSUBMIT %lu %u\nWAIT %lu %u\n",
           sizeof(struct p2p_dax_info), (unsigned)P2P_DAX_IOC_INFO,
           sizeof(struct p2p_dax_dma_submit), (unsigned)P2P_DAX_IOC_SUBMIT,
           sizeof(struct p2p_dax_dma_wait), (unsigned)P2P_DAX_IOC_WAIT);
    return 0;
}
""")
    exe = tmp_path / "uapi"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpadded", "-Werror",
                    "-o", str(exe), str(prog)], check=True)
    out = dict((name, tuple(map(int, rest.split())))
               for name, rest in (line.split(" ", 1) for line in
                                  subprocess.run([str(exe)], capture_output=True, text=True,
                                                 check=True).stdout.splitlines()))
    magic = defines["P2P_DAX_IOC_MAGIC"]
    read, write = 2, 1                      # _IOC_READ, _IOC_WRITE (asm-generic)
    for nr, (name, direction, size_define) in enumerate([
            ("INFO", read, "P2P_DAX_INFO_SIZE_VER1"),
            ("SUBMIT", read | write, "P2P_DAX_DMA_SUBMIT_SIZE_VER1"),
            ("WAIT", read | write, "P2P_DAX_DMA_WAIT_SIZE_VER1")]):
        size = defines[size_define]
        assert out[name] == (size, direction << 30 | size << 16 | magic << 8 | nr), name
