"""Importing this module registers every family."""
from . import mobilenet_v1, mobilenet_v2, mobilenet_v3  # noqa: F401
from . import efficientnet  # noqa: F401
from . import shufflenet, shufflenet_v2  # noqa: F401
from . import xception  # noqa: F401
