"""Only for the C extensions (the hot paths); everything else is in pyproject.toml.

schemas/batch_writer.c and batch_reader.c encode and decode EventBatch records (the sensor's and the processor's
hot paths), processor/open_fields.c seeds an open event's fields for the rules, sensor/record_decoder.c and
ring_scan.c read the sensor's ring buffer. All are optional: where no C compiler is present the build goes on,
schemas/codec.py encodes and decodes with fastavro, processor/event_fields.py and sensor/decode.py run in Python,
with the same results, more slowly. Both images (deploy/docker/Dockerfile and
Dockerfile.sensor) install a compiler for the build and fail it if their role's C path is missing.
"""

from setuptools import Extension, setup

C_FLAGS = ["-O2", "-Wall"]
setup(ext_modules=[
    Extension("schemas._batch_writer", ["schemas/batch_writer.c"], depends=["schemas/event_batch_keys.h"],
              optional=True, extra_compile_args=C_FLAGS),
    Extension("schemas._batch_reader", ["schemas/batch_reader.c"], depends=["schemas/event_batch_keys.h"],
              optional=True, extra_compile_args=C_FLAGS),
    Extension("processor._open_fields", ["processor/open_fields.c"], optional=True, extra_compile_args=C_FLAGS),
    Extension("sensor._record_decoder", ["sensor/record_decoder.c"], optional=True, extra_compile_args=C_FLAGS),
    Extension("sensor._ring_scan", ["sensor/ring_scan.c"], optional=True, extra_compile_args=C_FLAGS),
])
