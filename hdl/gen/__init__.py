"""Generators of RTL sources from the Python definitions they must agree with (the output is
checked in under hdl/rtl/, and a test fails when it is stale)."""
