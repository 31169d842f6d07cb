"""make test-arm64's parts that run on any machine: its refusals, the list of device tests it
runs, and the cross-architecture comparison's arithmetic. (The aarch64 run itself is
``make test-arm64``: root, qemu-user and minutes of emulation.)"""
import ast
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "arm64"))

import cross_arch  # noqa: E402
import run as arm64  # noqa: E402


def test_without_root_it_says_so_in_one_line_and_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert arm64.main(["--check-host"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: make test-arm64 needs root (debootstrap, chroot and "
                                "mount): run it as root, e.g. sudo make test-arm64"]


def test_without_a_binfmt_handler_it_says_which_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(arm64.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(arm64, "BINFMT", str(tmp_path))
    monkeypatch.setattr(arm64, "HANDLER", str(tmp_path / "qemu-aarch64"))
    calls = []
    monkeypatch.setattr(arm64.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    assert arm64.main(["--check-host"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: no enabled aarch64 binfmt handler ({tmp_path}/qemu-aarch64)")
    # it tried to set the handler up before refusing
    assert ["update-binfmts", "--enable", "qemu-aarch64"] in calls
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu\n")
    assert arm64.main(["--check-host"]) == 0


def _device_marked(path: str) -> bool:
    tree = ast.parse(open(path).read())
    return any(isinstance(node, ast.Attribute) and node.attr == "device"
               and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"
               for node in ast.walk(tree))


def test_the_device_run_takes_every_file_with_device_tests():
    tests = os.path.join(ROOT, "tests")
    marked = sorted(f"tests/{n}" for n in os.listdir(tests)
                    if n.startswith("test_") and n.endswith(".py")
                    and _device_marked(os.path.join(tests, n)))
    assert marked == sorted(arm64.DEVICE_TESTS)


def _work(tmp_path, reference, others, decoded=True):
    work = tmp_path / "work"
    (work / "outputs").mkdir(parents=True)
    (work / "images.json").write_text(json.dumps(
        {"images": ["a.png", "b.png"], "sources": ["/x/a.png", "/x/b.png"], "resolution": 128,
         "families": ["mobilenet"]}))
    base = {"machine": "x86_64", "litert": "2.3.0", "partitions": {"mobilenet": 1},
            "decoded_same": {"mobilenet": True}}
    np.savez(work / "outputs" / "x86_64.npz", mobilenet=reference)
    (work / "outputs" / "x86_64.json").write_text(json.dumps({"tag": "x86_64", **base}))
    for tag, (outputs, features) in others.items():
        np.savez(work / "outputs" / f"{tag}.npz", mobilenet=outputs)
        (work / "outputs" / f"{tag}.json").write_text(json.dumps(
            {"tag": tag, **base, "machine": "aarch64", "qemu_cpu": tag.split("-", 1)[1],
             "decoded_same": {"mobilenet": decoded}, **features}))
    return str(work)


def test_compare_counts_steps_differing_logits_and_top1(tmp_path):
    reference = np.array([[10, 3, -5, 0], [1, 7, 2, -128]], np.int8)
    near = reference.copy()
    near[0, 1] += 2    # a 2-step difference, top-1 kept
    flipped = reference.copy()
    flipped[1, 2] = 9  # image 2's top-1 moves from class 1 to class 2
    work = _work(tmp_path, reference, {
        "aarch64-cortex-a53": (near, {"dotprod": False, "i8mm": False}),
        "aarch64-max": (flipped, {"dotprod": True, "i8mm": True})})
    result = cross_arch.compare(work)
    rows = {r["run"]["tag"]: r["rows"][0] for r in result["runs"]}
    assert rows["aarch64-cortex-a53"] == {
        "family": "mobilenet", "images": 2, "top1_agree": 2, "x86_ties": 0, "max_steps": 2,
        "differing_share": 1 / 8, "images_identical": 1, "decoded_same": True, "partitions": 1}
    assert rows["aarch64-max"]["top1_agree"] == 1 and rows["aarch64-max"]["max_steps"] == 7
    assert cross_arch.disagreements(result) == [
        "max mobilenet: top-1 agrees on 1 of 2 images"]
    table = cross_arch.markdown(result)
    assert "| mobilenet | cortex-a53 (none of fp16/dotprod/sve/i8mm/sme) | 2/2 | 2 | 12.5 % | 1/2 | 1 |" \
        in table
    assert "| mobilenet | max (dotprod+i8mm) | 1/2 | 7 |" in table


def test_cpu_features_name_the_machine():
    features = cross_arch.cpu_features()
    assert features["machine"] == os.uname().machine
    if features["machine"] == "x86_64":
        assert "dotprod" not in features  # aarch64 capability bits only on aarch64


def test_the_emulated_cpuinfo_names_the_core_and_the_features_the_process_sees(
        monkeypatch, tmp_path):
    """XNNPACK's cpuinfo reads the core from /proc/cpuinfo (qemu-user shows the host's x86
    one): each emulated CPU gets its MIDR and the features getauxval gave under QEMU_CPU."""
    class Probe:
        returncode, stderr = 0, ""
        stdout = json.dumps({"hwcap": 1 | 2 | 1 << 20, "hwcap2": 1 << 13})

    seen = []
    monkeypatch.setattr(arm64, "chroot", lambda root, argv, env=None, **kw:
                        seen.append(env) or Probe())
    path = arm64.emulated_cpuinfo(str(tmp_path), "cortex-a76")
    assert path == "/work/cpuinfo-cortex-a76" and seen == [{"QEMU_CPU": "cortex-a76"}]
    text = (tmp_path / "work" / "cpuinfo-cortex-a76").read_text()
    blocks = text.strip().split("\n\n")
    assert len(blocks) == (os.cpu_count() or 1)
    assert blocks[0].splitlines() == [
        "processor\t: 0", "BogoMIPS\t: 50.00", "Features\t: fp asimd asimddp i8mm",
        "CPU implementer\t: 0x41", "CPU architecture: 8", "CPU variant\t: 0x4",
        "CPU part\t: 0xd0b", "CPU revision\t: 1"]
    with pytest.raises(SystemExit, match="no MIDR known for the emulated CPU cortex-x9"):
        arm64.emulated_cpuinfo(str(tmp_path), "cortex-x9")


def test_qemu_option_runs_the_cpu_checks_with_that_binary(tmp_path, monkeypatch):
    """--qemu PATH: the binary is copied into the root and named before every emulated
    command of the CPU checks, whose runs are tagged with it; a missing one is one line."""
    monkeypatch.setitem(arm64.QEMU, "path", None)
    argv = ["/venv/bin/python", "x.py"]
    assert arm64.under_qemu(argv, "max") == argv and arm64.cpu_tag("max") == "aarch64-max"
    with pytest.raises(SystemExit, match="no such file"):
        arm64.use_qemu(str(tmp_path), str(tmp_path / "missing"))
    fake = tmp_path / "qemu-aarch64-10"
    fake.write_text("#!/bin/sh\necho 'qemu-aarch64 version 10.0.13'\n")
    fake.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    assert arm64.use_qemu(str(root), str(fake)) == "qemu-aarch64 version 10.0.13"
    assert (root / "qemu-aarch64").exists()
    assert arm64.under_qemu(argv, "max") == ["/qemu-aarch64", "-cpu", "max", *argv]
    assert arm64.cpu_tag("max") == "aarch64-max-qemu-qemu-aarch64-10"


def test_a_tie_on_x86_is_not_a_disagreement():
    """Integer logits tie: x86's argmax takes the first tied class, aarch64 a step away may
    take the other; both are top classes. A real flip still counts."""
    x86 = np.array([[156, 156, 3], [9, 2, 1]], np.int32)
    arm = np.array([[155, 156, 3], [9, 2, 1]], np.int32)   # the tie broken the other way
    assert cross_arch.top1_agreement(x86, arm) == (2, 1)
    flipped = np.array([[150, 156, 3], [1, 9, 1]], np.int32)
    assert cross_arch.top1_agreement(x86, flipped) == (1, 1)
