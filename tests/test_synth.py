"""Open-source synthesis of the default (256-bit) endpoint for UltraScale+."""

from hw.flow.synth import synthesize


def test_default_build_synthesizes_with_bram():
    r = synthesize()
    assert r["errors"] == 0, r["dir"]
    assert r["lut"] > 0 and r["ff"] > 0, r["cells"]
    # BAR2's backing memory (256 KiB) must land in block RAM, not in LUTs or FFs.
    assert r["ramb36"] + r["ramb18"] > 0, r["cells"]
    assert r["bram36"] * 36 * 1024 >= r["params"]["mem_size"] * 8, r["cells"]
