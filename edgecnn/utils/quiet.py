"""Silencing native libraries' chatter on file descriptor 2 (TensorFlow's and LiteRT's C++
INFO lines), which Python's own logging settings cannot reach."""
import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Route fd 2 to /dev/null inside the block, unless TF_CPP_MIN_LOG_LEVEL=0 asks for
    the native logs. Python exceptions are unaffected."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
