"""p2p-dax host library: find the boards, map their BAR memory, run and check peer-to-peer transfers."""
