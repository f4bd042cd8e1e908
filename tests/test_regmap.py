"""The register map and the endpoint's build parameters."""

import dataclasses
from pathlib import Path

import pytest

from hw.spec import regmap


def test_map_is_consistent():
    regmap.check()
    offsets = [r.offset for r in regmap.REGISTERS]
    assert len(offsets) == len(set(offsets))
    assert all(o % 4 == 0 and o < regmap.BAR0_SIZE for o in offsets)


def test_check_catches_overlaps(monkeypatch):
    bad = regmap.REGISTERS + (regmap.Register("DUP", regmap.offset("SCRATCH"),
                                              regmap.Access.RW, "duplicate"),)
    monkeypatch.setattr(regmap, "REGISTERS", bad)
    with pytest.raises(ValueError, match="share offset"):
        regmap.check()


def test_check_catches_field_overflow(monkeypatch):
    reg = regmap.Register("WIDE", 0x3F0, regmap.Access.RO, "",
                          fields=(regmap.Field("f", 30, 4, ""),))
    monkeypatch.setattr(regmap, "REGISTERS", regmap.REGISTERS + (reg,))
    with pytest.raises(ValueError, match="does not fit"):
        regmap.check()


def test_regmap_imports_without_amaranth():
    """The host library imports the map on machines without the HDL toolchain."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['amaranth'] = None; import hw.spec.regmap as r; "
            "print(r.offset('SCRATCH'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == regmap.offset("SCRATCH")


amaranth = pytest.importorskip("amaranth", reason="HDL extra not installed")


@pytest.mark.parametrize("change, message", [
    (dict(data_width=96), "data_width"),
    (dict(bar2_size=3 << 20), "bar2_size"),
    (dict(bar2_size=1 << 20), "bar2_size"),
    (dict(mem_size=4 << 20), "mem_size"),
    (dict(np_queue_depth=40), "np_queue_depth"),
])
def test_bad_params_are_refused(change, message):
    from hw.params import EndpointParams
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(EndpointParams(), **change).validate()


def test_every_register_has_a_source_in_the_gateware():
    """Elaboration fails if a register of the map has no signal behind it."""
    from amaranth.back import rtlil
    from hw.params import EndpointParams
    from hw.bar_endpoint import BarEndpoint
    rtlil.convert(BarEndpoint(EndpointParams(data_width=64, mem_size=4096)))


def test_verilog_cli_refuses_bad_arguments(capsys):
    from hw.top import main
    with pytest.raises(SystemExit) as e:
        main(["-o", "/dev/null", "--bar2-size", "0x300000"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "bar2_size" in err and "power of two" in err


def test_c_header_is_current():
    """driver/p2p_dax_regs.h is generated from the map; a stale copy fails here."""
    committed = (Path(__file__).resolve().parent.parent / regmap.C_HEADER).read_text()
    assert committed == regmap.c_header(), (
        f"{regmap.C_HEADER} is stale: run `python -m hw.spec.regmap --c-header > {regmap.C_HEADER}`")


def test_c_header_compiles_and_matches_map(tmp_path):
    """Every register offset and field mask in the header has the map's value, checked by a C compiler."""
    import shutil
    import subprocess
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    src = tmp_path / "check.c"
    asserts = []
    for r in regmap.REGISTERS:
        asserts.append(f"_Static_assert(P2P_DAX_REG_{r.name} == {r.offset}, \"{r.name}\");")
        for f in r.fields:
            asserts.append(f"_Static_assert(P2P_DAX_{r.name}_{f.name.upper()}_MASK == {f.mask}u "
                           f"&& P2P_DAX_{r.name}_{f.name.upper()}_SHIFT == {f.lsb}, \"{r.name}.{f.name}\");")
    asserts.append(f"_Static_assert(P2P_DAX_MAGIC == {regmap.MAGIC}u, \"magic\");")
    src.write_text("#include \"p2p_dax_regs.h\"\n" + "\n".join(asserts) + "\n")
    header_dir = Path(__file__).resolve().parent.parent / "driver"
    out = subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only",
                          "-I", str(header_dir), str(src)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
