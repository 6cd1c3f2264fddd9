"""The compiled OTLP walk, built where a C compiler is (``optional``: without one the install still succeeds and
hotpath decodes with its pure-Python walk). Everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("stream.ingest.formats.otlp.wire", ["stream/ingest/formats/otlp/wire.c"], optional=True,
              extra_compile_args=["-O2", "-std=c11"]),
])
