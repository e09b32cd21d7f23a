"""Only for the C extensions (the sensor's hot path); everything else is in pyproject.toml.

Both are optional: where no C compiler is present (the processor image) the build goes on, schemas/codec.py
encodes with fastavro and sensor/decode.py decodes in Python, with the same results, more slowly.
"""

from setuptools import Extension, setup

C_FLAGS = ["-O2", "-Wall"]
setup(ext_modules=[
    Extension("schemas._batch_writer", ["schemas/batch_writer.c"], optional=True, extra_compile_args=C_FLAGS),
    Extension("sensor._record_decoder", ["sensor/record_decoder.c"], optional=True, extra_compile_args=C_FLAGS),
    Extension("sensor._ring_scan", ["sensor/ring_scan.c"], optional=True, extra_compile_args=C_FLAGS),
])
