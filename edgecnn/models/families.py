"""Importing this module registers every family."""
from . import mobilenet_v1, mobilenet_v2, mobilenet_v3  # noqa: F401
