from setuptools import setup; setup()  # noqa: E702 - metadata lives in setup.cfg
