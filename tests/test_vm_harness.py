"""The VM harness itself (vm/): Debian's 6.1 and 6.12 boot under QEMU
with the PCIe topology the driver tests rely on, a command's output and exit
code come back, the caller's ivshmem file and NVMe images are the ones the
guest sees, and the host-root mode runs the host's tools. No driver here."""

import os
import re
from pathlib import Path

import pytest

from vm import kernels, qemu
from vm.qemu import VMError, run

pytestmark = pytest.mark.vm

KERNELS = kernels.under_test(*kernels.STOCK)
MiB = 1 << 20

DEVICES = r"""
for d in /sys/bus/pci/devices/*; do
    case "$(cat $d/vendor):$(cat $d/device)" in
    0x1af4:0x1110) echo "ivshmem ${d##*/} $(readlink -f $d)";;
    esac
done
for b in /sys/block/nvme*n1; do
    echo "nvme $(tr -d ' ' < $b/device/serial) /dev/${b##*/} $(cat $b/size)" \
         "$(readlink -f $b/device/device)"
done
"""


@pytest.mark.parametrize("kernel", KERNELS)
def test_boot_topology(kernel):
    """uname -r is the fetched kernel's; ivshmem and both NVMe sit behind one
    switch, or with the IOMMU on each on a root port of its own."""
    r = run(kernel, "uname -r\n" + DEVICES, driver=False)
    assert r.returncode == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == kernels.fetch(kernel).release
    ivshmem = [line.split() for line in lines if line.startswith("ivshmem ")]
    nvme = {f[1]: f for f in (line.split() for line in lines if line.startswith("nvme "))}
    assert len(ivshmem) == 1, r.output
    assert sorted(nvme) == ["n0", "n1"], r.output
    assert all(f[3] == str(64 * MiB // 512) for f in nvme.values()), r.output
    paths = [ivshmem[0][2]] + [f[4] for f in nvme.values()]
    if qemu.iommu_default():
        # sysfs paths: /sys/devices/pci0000:00/root port/device, a port each
        assert {os.path.dirname(os.path.dirname(p)) for p in paths} == \
            {"/sys/devices/pci0000:00"}, r.output
        assert len({os.path.dirname(p) for p in paths}) == 3, f"ports shared: {r.output}"
    else:
        # sysfs paths: .../root port/upstream port/downstream port/device
        upstream = {os.path.dirname(os.path.dirname(p)) for p in paths}
        assert len(upstream) == 1, f"not behind one switch: {r.output}"


@pytest.mark.parametrize("kernel", KERNELS)
def test_output_and_exit_code(kernel):
    r = run(kernel, "echo out; echo err >&2; printf 'no newline'; exit 7", driver=False)
    assert r.returncode == 7
    assert r.output == "out\nerr\nno newline"
    assert r.log is not None and r.log.is_file()       # a failed command keeps the console log


@pytest.mark.parametrize("kernel", kernels.under_test("6.12"))
def test_module_parameters_from_the_command_line(kernel):
    """module.param=value on the kernel command line reaches the modules the
    harness loads, as modprobe passes it (nvme_core is a module on Debian)."""
    r = run(kernel, "cat /sys/module/nvme_core/parameters/io_timeout", driver=False,
            extra_append="nvme_core.io_timeout=77")
    assert r.returncode == 0 and r.output.strip() == "77", r.output


@pytest.mark.parametrize("kernel", kernels.under_test("6.12"))
def test_caller_files(kernel, tmp_path):
    """What the guest writes into ivshmem's BAR and onto nvme n1 lands in the caller's files."""
    iv = tmp_path / "ivshmem"
    with open(iv, "wb") as f:
        f.truncate(4 * MiB)
    images = [tmp_path / "n0.img", tmp_path / "n1.img"]
    for img in images:
        with open(img, "wb") as f:
            f.truncate(8 * MiB)
    r = run(kernel, DEVICES + r"""
for d in /sys/bus/pci/devices/*; do grep -q 0x1110 $d/device && iv=$d; done
for b in /sys/block/nvme*n1; do grep -q n1 $b/device/serial && n1=/dev/${b##*/}; done
bar2=$(sed -n 3p $iv/resource | cut -d' ' -f1)
echo 1 > $iv/enable || exit 1
devmem $((bar2 + 4096)) 32 0x600dcafe || exit 1
echo hello-nvme | dd of=$n1 bs=512 seek=3 conv=sync,fsync 2>/dev/null || exit 1
""", driver=False, ivshmem_file=iv, nvme_images=images)
    assert r.returncode == 0, r.output
    assert "ivshmem" in r.output and iv.stat().st_size == 4 * MiB
    assert iv.read_bytes()[4096:4100] == (0x600dcafe).to_bytes(4, "little")
    assert images[1].read_bytes()[3 * 512:3 * 512 + 10] == b"hello-nvme"


@pytest.mark.parametrize("kernel", KERNELS)
def test_host_root(kernel, tmp_path):
    """The host's python3 runs in the guest, in the host's current directory; a
    shared directory takes the guest's output."""
    r = run(kernel, f"pwd; python3 -c 'print(6 * 7)'; uname -r > {tmp_path}/release",
            driver=False, host_root=True, shares=[tmp_path])
    assert r.returncode == 0, r.output
    assert r.output == f"{os.getcwd()}\n42\n"
    assert (tmp_path / "release").read_text().strip() == kernels.fetch(kernel).release


@pytest.mark.parametrize("kernel", kernels.under_test("6.12"))
def test_timeout(kernel):
    """A command that does not end: QEMU is killed, the error has the end of
    the console output, and the saved log shows what the guest was doing shortly before:
    its processes with their wait channels and the kernel's blocked tasks."""
    with pytest.raises(VMError, match=r"did not finish within 30 s(.|\n)*sysrq") as e:
        run(kernel, "echo before the timeout; sleep 600", driver=False, timeout=30)
    log = re.search(r"console log: (\S+)", str(e.value))[1]
    before, _, dump = Path(log).read_text().partition("p2p-dax-vm: the command still runs after")
    assert "before the timeout" in before, before
    assert re.search(r"^\d+ S hrtimer_nanosleep: sleep 600 $", dump, re.M), dump
    assert "sysrq: Show Blocked State" in dump, dump


def test_unknown_kernel():
    with pytest.raises(kernels.KernelError, match="unknown kernel '5.10'"):
        run("5.10", "true")


def test_kernel_and_iommu_choice(monkeypatch):
    """P2P_DAX_VM_KERNELS and P2P_DAX_VM_IOMMU (make vm-test KERNELS=... IOMMU=1):
    each test's default, all, a list, P2PDMA-only tests, and bad values."""
    monkeypatch.delenv(kernels.KERNELS_ENV, raising=False)
    assert kernels.under_test("6.1") == ("6.1",)
    assert kernels.under_test(*kernels.STOCK, p2pdma=True) == (kernels.WITH_P2PDMA,)
    monkeypatch.setenv(kernels.KERNELS_ENV, "all")
    assert kernels.under_test("6.1") == kernels.STOCK
    monkeypatch.setenv(kernels.KERNELS_ENV, "6.1, 7.3")
    assert kernels.under_test("6.12") == ("6.1", "7.3")
    monkeypatch.setenv(kernels.KERNELS_ENV, "6.1")
    assert kernels.under_test(kernels.WITH_P2PDMA, p2pdma=True) == ()
    monkeypatch.setenv(kernels.KERNELS_ENV, "6.1,5.10")
    with pytest.raises(kernels.KernelError, match="unknown kernel '5.10'; give 'all' or some of"):
        kernels.under_test("6.1")
    monkeypatch.delenv(qemu.IOMMU_ENV, raising=False)
    assert qemu.iommu_default() is False
    monkeypatch.setenv(qemu.IOMMU_ENV, "1")
    assert qemu.iommu_default() is True
    monkeypatch.setenv(qemu.IOMMU_ENV, "yes")
    with pytest.raises(VMError, match="P2P_DAX_VM_IOMMU=yes: give 1"):
        qemu.iommu_default()
