"""Only for the C extension; everything else is in pyproject.toml.

The writer is optional: where no C compiler is present (the processor image) the build goes on and
schemas/codec.py encodes with fastavro, which writes the same bytes more slowly.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("schemas._batch_writer", ["schemas/batch_writer.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall"])])
