"""The VM harness: Debian kernels booted under QEMU with the project's PCIe
topology (ivshmem, NVMe, the virtual board), the driver built for each, and a
shell command run in the guest. `make driver`, `make vm` and `make vm-bench`
use it (`python -m vm`), and the tests in tests/test_vm_*.py import it."""
