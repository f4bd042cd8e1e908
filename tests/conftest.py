"""Session-wide reporting: which kernels and IOMMU setting the VM tests used
(vm/kernels.py under_test, vm/qemu.py iommu_default), said at the
end of a run that chose them (make vm-test KERNELS=... IOMMU=...)."""

import os

from vm import kernels, qemu


def _matrix():
    chosen = os.environ.get(kernels.KERNELS_ENV) or "each test's own"
    iommu = "on" if qemu.iommu_default() else "off"
    return f"VM tests: kernels {chosen} ({kernels.KERNELS_ENV}), IOMMU {iommu} ({qemu.IOMMU_ENV})"


def pytest_report_header(config):
    return _matrix()


def pytest_terminal_summary(terminalreporter):
    if os.environ.get(kernels.KERNELS_ENV) or os.environ.get(qemu.IOMMU_ENV):
        terminalreporter.write_line(_matrix())
