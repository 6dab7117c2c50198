"""DataHub: a Jupyter-centric self-service data hub."""

__version__ = "0.1.0"
