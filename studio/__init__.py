"""SLM Studio: distill a big teacher language model into a small, fast student on your own data."""

__version__ = "0.1.0"
