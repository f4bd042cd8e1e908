"""Only what pyproject.toml cannot say: the cffi extension host._native
(host/_native_build.py), compiled by the package build with the machine's
C compiler against driver/p2p_dax_regs.h and zlib."""

from setuptools import setup

setup(cffi_modules=["host/_native_build.py:ffibuilder"])
