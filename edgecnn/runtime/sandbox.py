"""Trying LiteRT on a model in a forked child right before running it in this process.

LiteRT's C++ verifies a model's flatbuffer but not its graph: an operator given fewer inputs
than its kernel reads, an optional input (-1) where one is required, a zero quantization
scale or a changed tensor type can kill the process with SIGSEGV in ``allocate_tensors()``
or ``invoke()`` (found by fuzzing; see tests/test_corrupt_models.py). Some of these read
memory past an array, so whether they crash depends on what lies there. The child is forked
right before this process does the same steps, so both start from the same memory; a child
killed by a signal means this process would have been. The child may use at most
``MEMORY_BUDGET`` more memory: a damaged shape that asks for gigabytes fails there instead
of calling the kernel's OOM killer. Cost: a fork plus one load and inference (10-60 ms for
the MobileNets). Without ``fork`` (Windows) nothing is tried.
"""
from __future__ import annotations

import os
import select
import signal
import time

MEMORY_BUDGET = 4 * 2**30  # bytes a model may allocate in the child, beyond what is mapped
TIMEOUT = 300  # seconds for the child's load and one inference (EfficientNet-B7 on a Pi: ~30)


def _limit_memory() -> None:
    try:
        import resource

        with open("/proc/self/status") as f:
            data = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
        limit = data + MEMORY_BUDGET
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(
            resource.RLIMIT_DATA)[1]))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: no budget


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_in_child(steps) -> tuple[str, str] | None:
    """Run ``steps``, (what, callable) pairs, in a forked child: None when all ran, else
    (what failed, why): "crashed with SIGSEGV", or the first line of the Python error."""
    if not hasattr(os, "fork"):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report each step and any error, never return
        try:
            import faulthandler

            faulthandler.disable()  # a crash here is expected: no traceback dump
            os.close(read)
            _limit_memory()
            for what, step in steps:
                os.write(write, f"step {what}\n".encode())
                step()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            text = str(exc).strip()
            os.write(write, f"error {text.splitlines()[0] if text else type(exc).__name__}"
                            f"\n".encode(errors="replace"))
        os._exit(0)
    os.close(write)
    try:
        chunks, deadline = [], time.monotonic() + TIMEOUT
        with os.fdopen(read, "rb") as pipe:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([pipe], [], [], left)[0]:
                    raise TimeoutError
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        report = b"".join(chunks).decode(errors="replace").splitlines()
        _, status = os.waitpid(pid, 0)
    except TimeoutError:  # an endless loop (or a hung child): refuse, leave no child
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        steps_done = [line[5:] for line in b"".join(chunks).decode(
            errors="replace").splitlines() if line.startswith("step ")]
        return (steps_done[-1] if steps_done else "starting",
                f"did not finish within {TIMEOUT} s")
    except BaseException:  # Ctrl-C while waiting: leave no child behind
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    steps_done = [line[5:] for line in report if line.startswith("step ")]
    what = steps_done[-1] if steps_done else "starting"
    if os.WIFSIGNALED(status):
        return what, f"crashed with {_signal_name(os.WTERMSIG(status))}"
    errors = [line[6:] for line in report if line.startswith("error ")]
    return (what, errors[0]) if errors else None
