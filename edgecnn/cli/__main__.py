"""``python -m edgecnn.cli``: the ``edgecnn`` command."""
from . import main

main()
