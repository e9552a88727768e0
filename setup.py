from setuptools import setup; setup()  # noqa: E702, I001 - metadata lives in setup.cfg
