"""Build the optional C accelerator `server._speedups` (frame unmasking).

Everything else about the package is in pyproject.toml. The extension is optional: where
no C compiler is available the build goes on without it and `server.frames` uses its
pure-Python `apply_mask`.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("server._speedups", ["server/_speedups.c"], optional=True),
    ],
)
