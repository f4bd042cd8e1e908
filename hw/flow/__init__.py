"""The board flow: board definitions, the hard IP's configuration, the
bitstream build tree for Vivado, loading it, and open-source synthesis.
"""
