"""p2pdax bench without a device: a RAM buffer stands in for the BAR and files
for the NVMe devices. (With the driver, in the VM: tests/test_vm_host.py.)"""

import json
import os
import platform

import pytest

from host import bench, cli, client, native, transfer
from tests.fakes import fake_device

MiB = 1 << 20


@pytest.fixture
def files(tmp_path):
    source, target = tmp_path / "source.img", tmp_path / "target.img"
    source.write_bytes(os.urandom(4 * MiB))
    target.write_bytes(b"")
    return source, target


def test_sweep_moves_real_data_on_every_path(files):
    source, target = files
    with transfer.RamBuffer(8 * MiB) as bar:
        b = bench.Bench(bar, total=4 * MiB, sizes=[4096, MiB], rounds=2,
                        source=str(source), target=str(target))
        seen = []
        rows = b.run(lambda path, size: seen.append((path, size)))
        assert len(seen) == b.steps == 5 * 2 * 2 * 2
        assert [(r.path, r.size) for r in rows] == [
            (p, s) for p in ("cpu-read", "cpu-write", "nvme->bar", "bar->nvme", "library")
            for s in (4096, MiB)]
        for r in rows:
            assert r.mb_per_s > 0 and r.reference_mb_per_s > 0, r
            assert r.reference == bench.PATHS[r.path]
            assert r.as_dict()["ratio"] == round(r.mb_per_s / r.reference_mb_per_s, 4)
        # bar->nvme wrote what nvme->bar had put in the BAR; the library path last.
        assert target.read_bytes() == source.read_bytes()
        assert bytes(bar.buffer[:4 * MiB]) == source.read_bytes()


def test_paths_need_their_device(files):
    source, _ = files
    with transfer.RamBuffer(MiB) as bar:
        b = bench.Bench(bar, total=MiB)
        assert b.paths == ["cpu-read", "cpu-write"] and b.sizes == (4096, 64 << 10, 256 << 10, MiB)
        assert bench.Bench(bar, total=MiB, source=str(source)).paths == [
            "cpu-read", "cpu-write", "nvme->bar", "library"]


@pytest.mark.parametrize("kwargs, message", [
    ({"total": 2 * MiB}, "is outside the RAM buffer"),
    ({"total": 1000}, "total 1000: give a positive multiple of 4096"),
    ({"sizes": [4096, 6000]}, "must be multiples of 4096 from 4096 to the total .*: 6000"),
    ({"sizes": [2 * MiB]}, "to the total"),
    ({"rounds": 0}, "rounds and queue depth must be at least 1"),
])
def test_bad_parameters(kwargs, message):
    with transfer.RamBuffer(MiB) as bar:
        with pytest.raises(ValueError, match=message):
            bench.Bench(bar, **({"total": MiB} | kwargs))


def test_source_too_small(files):
    source, _ = files
    with transfer.RamBuffer(8 * MiB) as bar:
        with pytest.raises(ValueError, match="holds 4194304 bytes, less than .* --total"):
            bench.Bench(bar, total=8 * MiB, source=str(source))


def test_native_memcpy_and_dio_read(files):
    source, _ = files
    data = source.read_bytes()
    out = bytearray(len(data))
    native.memcpy(memoryview(out), memoryview(data), 4096)
    assert out == data
    with transfer.RamBuffer(8 * MiB) as ram:
        fd = os.open(source, os.O_RDONLY | os.O_DIRECT)
        try:
            assert native.dio_read(fd, ram.buffer, MiB) == 4 * MiB    # stops at the end
            assert bytes(ram.buffer[:4 * MiB]) == data
            misaligned = ram.buffer[1:4097]
            with pytest.raises(OSError, match="Invalid argument"):    # EINVAL from the kernel
                native.dio_read(fd, misaligned, 4096)
            misaligned.release()
        finally:
            os.close(fd)


@pytest.fixture
def cli_device(tmp_path, monkeypatch):
    """`p2pdax bench dax0.0` on a fake device whose BAR is a RAM buffer."""
    dev = client._describe(fake_device(tmp_path / "sys"), sysfs=tmp_path / "sys")
    monkeypatch.setattr(client, "find", lambda name=None: dev)
    monkeypatch.setattr(client, "open_bar", lambda d: transfer.RamBuffer(8 * MiB))
    return dev


def test_cli_json_and_plot(cli_device, files, tmp_path, capsys):
    source, target = files
    png = tmp_path / "bench.png"
    assert cli.main(["bench", "dax0.0", "--json", "--total", "4M", "--sizes", "64K,1M",
                     "--rounds", "1", "--source", str(source), "--target", str(target),
                     "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == cli_device.address and out["total"] == 4 * MiB
    assert {(r["path"], r["size"]) for r in out["results"]} == {   # no engine: no dma-*
        (p, s) for p in bench.PATHS if not p.startswith("dma-") for s in (64 << 10, MiB)}
    assert out["dma_node"] is None and out["dma_total"] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000


def test_cli_table(cli_device, capsys):
    assert cli.main(["bench", "dax0.0", "--total", "1M", "--sizes", "4K,1M",
                     "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"p2pdax bench {cli_device.address} (/dev/dax0.0, Linux "
                        f"{platform.release()}): 1 MiB per pass, best of 1, queue depth 4")
    assert lines[1].split() == ["path", "size", "MB/s", "reference", "MB/s", "ratio"]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["cpu-read", "4K"], ["cpu-read", "1M"], ["cpu-write", "4K"], ["cpu-write", "1M"]]


def test_cli_bad_arguments(cli_device, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "dax0.0", "--sizes", "4K,lots"])
    assert e.value.code == 2
    assert "not a size: 'lots'" in capsys.readouterr().err
    assert cli.main(["bench", "dax0.0", "--sizes", "5000"]) == 1
    assert "p2pdax: transfer sizes must be multiples of 4096" in capsys.readouterr().err


def test_cli_progress_bar_on_a_terminal(cli_device, monkeypatch, capsys):
    """On a terminal, stderr shows a progress bar that reaches every pass;
    with --json it stays quiet (the JSON goes to stdout, nothing to stderr)."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert cli.main(["bench", "dax0.0", "--total", "1M", "--sizes", "4K,1M",
                     "--rounds", "2"]) == 0
    steps = 2 * 2 * 2 * 2        # paths x sizes x rounds x (path, reference)
    assert f"{steps}/{steps}" in term.getvalue() and "cpu-write 1 MiB" in term.getvalue()
    capsys.readouterr()
    term.truncate(0)
    assert cli.main(["bench", "dax0.0", "--total", "1M", "--rounds", "1", "--json"]) == 0
    assert term.getvalue() == ""


def test_cli_paths(cli_device, files, capsys):
    """--paths runs the paths named; one that cannot run here, or no such
    path, is refused with one line."""
    source, _ = files
    assert cli.main(["bench", "dax0.0", "--total", "1M", "--sizes", "1M", "--rounds", "1",
                     "--paths", "library,cpu-write", "--source", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["cpu-write", "library"]
    for paths, message in [
            ("dma-read", "path dma-read needs the board's DMA engine, ready to move data"),
            ("nvme->bar", "path nvme->bar needs a SOURCE (--source)"),
            ("cpu-read,gpu", "no path 'gpu': the paths are cpu-read, cpu-write, dma-read, ")]:
        assert cli.main(["bench", "dax0.0", "--total", "1M", "--paths", paths]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"p2pdax: {message}") and err.count("\n") == 1, err


def test_slow_rates_keep_their_digits():
    """A board in simulation moves tens of kB/s: the table shows three
    significant digits there rather than 0.0."""
    row = bench.Row("dma-read", 65536, 0.046812, "memcpy BAR -> RAM", 0.0093)
    assert bench.table([row]).splitlines()[1].split() == [
        "dma-read", "64K", "0.0468", "memcpy", "BAR", "->", "RAM", "0.0093", "5.034"]
    assert bench.rate(226.94) == "226.9" and bench.rate(0.0) == "0"
    slow = bench.Row("cpu-read", 4096, 0.0123, "memcpy RAM -> RAM", 200.0)
    assert bench.table([slow]).splitlines()[1].split()[-1] == "6.2e-05"
