"""Workflows: what a command runs, on top of the library (models, converters, runtime, data,
train), apart from it as TF Model Garden keeps its tasks apart from ``modeling/``."""
