"""A STAND-IN for Android's adb (there is no phone here), shared by the adb tests
(tests/test_adb.py) and the device-farm sweep tests (tests/test_sweep.py).

``fake_adb`` puts a small script named adb on PATH that records its arguments and answers
like adb would (device list, pushes, getprop); for the benchmark_model run it replays a REAL
benchmark_model output from tests/data/benchmark_outputs/ (outputs published in public
repositories, copied byte-exact; that folder's README.md cites the source of each file),
per device when ``replay_by_serial`` names one.
"""
import json
import os
import stat
import sys

import pytest

# Real benchmark_model outputs, each with its published source in that folder's README.md
REAL = os.path.join(os.path.dirname(__file__), "data", "benchmark_outputs")
CURRENT = "09_ti_am62x_xnnpack_plain_info_prefix.txt"  # TFLite ~2.18+: XNNPACK, p5/median/p95

STAND_IN = '''#!{python}
# STAND-IN for Android's adb, written by tests/stand_in_adb.py (there is no phone here): it records
# its arguments and answers from the JSON state file named by $FAKE_ADB_STATE.
import json, os, sys
state = json.load(open(os.environ["FAKE_ADB_STATE"]))
with open(state["log"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:1] == ["-s"]:
    args = args[2:]
if args[0] == "devices":
    print("List of devices attached")
    for serial, status in state["devices"].items():
        print(serial + "\\t" + status)
    print()
elif args[0] == "push":
    print(args[1] + ": 1 file pushed, 0 skipped. 38.2 MB/s (1024 bytes in 0.001s)")
elif args[0] == "shell" and args[1].startswith("getprop"):
    serial = sys.argv[2] if sys.argv[1:2] == ["-s"] else None
    print(state.get("product_by_serial", {{}}).get(serial, state["product"]))
    print(state["abilist"])
elif args[0] == "shell" and any(a.startswith("--graph=") for a in args):
    serial = sys.argv[2] if sys.argv[1:2] == ["-s"] else None
    sys.stdout.write(open(state.get("replay_by_serial", {{}}).get(serial, state["replay"])).read())
    sys.exit(state.get("exit", 0))
'''


class FakeAdb:
    def __init__(self, folder):
        self.folder = folder
        self.state_path = folder / "state.json"
        self.log = folder / "adb_calls.jsonl"
        self.state = {"log": str(self.log), "devices": {"R58M41ABCDE": "device"},
                      "product": "Pixel 7", "abilist": "arm64-v8a,armeabi-v7a,armeabi",
                      "replay": os.path.join(REAL, CURRENT), "exit": 0}
        self.save()

    def save(self, **changes):
        self.state.update(changes)
        self.state_path.write_text(json.dumps(self.state))

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture()
def fake_adb(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "adb"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    fake = FakeAdb(tmp_path)
    monkeypatch.setenv("FAKE_ADB_STATE", str(fake.state_path))
    return fake


def elf(path, machine=183):
    """A file with an ELF header for ``machine`` (183 aarch64, 40 arm): what edgecnn checks
    before pushing a benchmark binary."""
    header = bytearray(64)
    header[:4], header[4], header[5] = b"\x7fELF", 2, 1
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))
    return str(path)


