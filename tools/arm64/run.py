"""``make test-arm64``: edgecnn's light install and its int8 models checked on aarch64, here.

1. An aarch64 Debian root (``debootstrap --arch=arm64 --variant=minbase bookworm``) is built
   once into ``.cache/arm64-root`` (git-ignored; later runs reuse it), run through qemu-user's
   binfmt handler. With root and apt-get, the Debian packages it needs (qemu-user-static,
   debootstrap, binfmt-support) are installed and the handler enabled when missing.
2. The working tree (tracked and untracked files, not ignored ones) is installed there with
   the light profile (``pip install .``: aarch64 wheels of numpy, ai-edge-litert and Pillow
   from PyPI, at this machine's versions of numpy and ai-edge-litert).
3. The models and data the device tests read are made here with TensorFlow
   (``tests/device_fixtures.py``), and the tests marked ``device`` run there (bench, info,
   predict, eval, profile, adb parsing, card reading, damaged models) as a Cortex-A76.
   Every emulated process runs in a mount namespace of its own with /proc, /sys and an
   aarch64 /proc/cpuinfo for its CPU (``emulated``): without that file XNNPACK finds no ARM
   core in the host's x86 cpuinfo and stays off, silently.
4. Cross-architecture agreement (``tools/arm64/cross_arch.py``): one int8 model of every
   family at 128 px, on real photos, run on x86 here and on aarch64 under several emulated
   CPUs (``QEMU_CPU``); top-1 must agree on every image, XNNPACK must take each model whole
   there as it does here, and each CPU's features and core must reach the process.

    python tools/arm64/run.py [--cpus "cortex-a53;cortex-a76;max,sme=off"] [--images DIR --limit N]
                              [--results DIR] [-k EXPR]

It needs root (debootstrap, chroot, mount) and a working aarch64 binfmt handler; without
them it says what is missing in one line and exits 2. Timing under emulation means nothing:
this proves installability and correctness, not speed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
INCLUDE = "python3,python3-venv,python3-pip,ca-certificates"
DEBIAN_PACKAGES = ["qemu-user-static", "debootstrap", "binfmt-support"]
BINFMT = "/proc/sys/fs/binfmt_misc"
HANDLER = os.path.join(BINFMT, "qemu-aarch64")
READY = ".edgecnn-root-ready"
VENV = "/opt/venv"
#: the tests that need only the light install (each is marked ``device``)
DEVICE_TESTS = ["tests/test_adb.py", "tests/test_op_profile.py", "tests/test_bench.py",
                "tests/test_eval_predict.py", "tests/test_profile.py",
                "tests/test_corrupt_models.py", "tests/test_imagenet_data.py",
                "tests/test_model_io.py", "tests/test_cli.py", "tests/test_android_demo.py",
                "tests/test_foreign.py", "tests/test_decode.py"]
#: emulated CPUs: no dot product (Cortex-A53), dot product (Cortex-A76), and qemu's
#: everything but SME (dot product, i8mm, SVE): XNNPACK picks its int8 kernels by these
#: features. With SME on ("max") every model's logits are wrong on qemu 7.2 (0-9 of 12
#: top-1 agree, 100-220 steps off; identical to the others with sme=off, measured
#: 2026-11-30); under qemu 10.0 (--qemu) "max" with SME is bit-identical to x86 on 100
#: photos (2026-12-07): qemu 7.2's SME emulation was at fault, not LiteRT's kernels.
CPUS = {"cortex-a53": {"dotprod": False, "cpu_part": "0xd03"},
        "cortex-a76": {"dotprod": True, "i8mm": False, "cpu_part": "0xd0b"},
        "max,sme=off": {"dotprod": True, "i8mm": True, "sme": False, "cpu_part": "0x051"}}
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


class Refusal(Exception):
    """What is missing on this machine: one line, exit status 2."""


def say(message: str) -> None:
    print(f"[test-arm64] {message}", flush=True)


def check_host() -> None:
    if not sys.platform.startswith("linux"):
        raise Refusal("make test-arm64 needs Linux (debootstrap, chroot, qemu-user binfmt)")
    if os.geteuid() != 0:
        raise Refusal("make test-arm64 needs root (debootstrap, chroot and mount): run it as "
                      "root, e.g. sudo make test-arm64")
    missing = [p for p, tool in zip(DEBIAN_PACKAGES, ["qemu-aarch64-static", "debootstrap",
                                                      "update-binfmts"])
               if shutil.which(tool) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise Refusal(f"make test-arm64 needs the Debian packages {' '.join(missing)} "
                          f"and this machine has no apt-get: install them by hand")
        say(f"installing {' '.join(missing)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", *missing]):
            if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode:
                raise Refusal(f"apt-get could not install {' '.join(missing)}: install them "
                              f"by hand")
    if not os.path.exists(os.path.join(BINFMT, "status")):
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT],
                       stderr=subprocess.DEVNULL)
    if not _handler_enabled():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not _handler_enabled():
        raise Refusal(f"no enabled aarch64 binfmt handler ({HANDLER}): mount binfmt_misc on "
                      f"{BINFMT} and run update-binfmts --enable qemu-aarch64 (in a container: "
                      f"enable it on the host, with the F flag)")


def _handler_enabled() -> bool:
    try:
        with open(HANDLER) as f:
            return f.readline().strip() == "enabled"
    except OSError:
        return False


#: ``--qemu PATH``: a static qemu-aarch64 that runs the emulated processes of the CPU checks
#: (copied into the root as /qemu-aarch64), instead of the binfmt handler's (Debian 12: 7.2)
QEMU_IN_ROOT = "/qemu-aarch64"
QEMU = {"path": None}


def chroot(root: str, argv: list, env: dict | None = None, **kwargs):
    return subprocess.run(["chroot", root, *argv], env={**CLEAN_ENV, **(env or {})},
                          **kwargs)


def under_qemu(argv: list, cpu: str) -> list:
    """``argv`` run by the ``--qemu`` binary as ``cpu``, or as it is (binfmt)."""
    return [QEMU_IN_ROOT, "-cpu", cpu, *argv] if QEMU["path"] else list(argv)


def use_qemu(root: str, path: str) -> str:
    """Copy ``path`` (a static qemu-aarch64) into the root; its version line."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: --qemu {path}: no such file; give a static qemu-aarch64 "
                         f"(e.g. from Debian 13's qemu-user package)")
    shutil.copy2(path, os.path.join(root, QEMU_IN_ROOT.lstrip("/")))
    QEMU["path"] = path
    version = subprocess.run([path, "--version"], capture_output=True, text=True)
    return (version.stdout.splitlines() or ["?"])[0]


def cpu_tag(cpu: str) -> str:
    """The run's tag: the CPU, and the qemu when ``--qemu`` chose one."""
    return f"aarch64-{cpu}" + ("-qemu-" + os.path.basename(QEMU["path"]) if QEMU["path"]
                               else "")


def build_root(root: str) -> None:
    """The aarch64 root with Python and a venv, built beside and moved into place whole."""
    if os.path.exists(os.path.join(root, READY)):
        say(f"reusing the aarch64 root {root}")
        return
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    say(f"building the aarch64 root (debootstrap {SUITE}, a few minutes) into {root}")
    start = time.time()
    proc = subprocess.run(["debootstrap", "--arch=arm64", "--variant=minbase",
                           f"--include={INCLUDE}", SUITE, tmp, MIRROR],
                          capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
        raise SystemExit(f"error: debootstrap failed: {' '.join(tail)}")
    _network(tmp)
    proc = chroot(tmp, ["python3", "-m", "venv", VENV], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"error: the aarch64 root cannot run Python: {proc.stderr.strip()}")
    with open(os.path.join(tmp, READY), "w") as f:
        json.dump({"suite": SUITE, "include": INCLUDE, "seconds": round(time.time() - start)}, f)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    say(f"aarch64 root built in {time.time() - start:.0f} s")


def _network(root: str) -> None:
    """pip inside the root reaches the package index as this machine does."""
    for src in ("/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt"):
        if os.path.exists(src):
            dst = os.path.join(root, src.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


def copy_tree(root: str) -> str:
    """The working tree's files (tracked and untracked, not ignored) into ROOT/src."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True)
    if listed.returncode:
        raise SystemExit("error: make test-arm64 copies the working tree with git ls-files; "
                         "run it in a git checkout of edgecnn")
    src = os.path.join(root, "src")
    shutil.rmtree(src, ignore_errors=True)
    for name in listed.stdout.decode().split("\0"):
        if name and os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.join(src, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(src, name))
    return src


def install(root: str) -> None:
    """The light profile from /src, pinned to this machine's numpy and LiteRT."""
    pins = [f"{p}=={importlib.metadata.version(p)}" for p in ("numpy", "ai-edge-litert")]
    with open(os.path.join(root, "constraints.txt"), "w") as f:
        f.write("\n".join(pins) + "\n")
    say(f"installing the light profile into the aarch64 root ({', '.join(pins)})")
    start = time.time()
    proc = chroot(root, [f"{VENV}/bin/python", "-m", "pip", "install", "--quiet",
                         "--disable-pip-version-check", "-c", "/constraints.txt", "/src",
                         "pytest>=7", "pytest-xdist>=3", "pytest-timeout>=2", "matplotlib>=3.7"],
                  capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit("error: pip install in the aarch64 root failed: "
                         + " ".join(proc.stderr.strip().splitlines()[-2:]))
    probe = chroot(root, [f"{VENV}/bin/python", "-c", (
        "import importlib.util as u, json, platform; print(json.dumps({'machine': "
        "platform.machine(), 'tensorflow': u.find_spec('tensorflow') is not None}))")],
        capture_output=True, text=True)
    found = json.loads(probe.stdout)
    if found != {"machine": "aarch64", "tensorflow": False}:
        raise SystemExit(f"error: the aarch64 root is not the light install on aarch64: {found}")
    say(f"installed in {time.time() - start:.0f} s")


#: what /proc/cpuinfo says of each emulated CPU: implementer, variant, part, revision (MIDR;
#: Arm's technical reference manuals; qemu's "max" has implementer 0 and part 0x51, 'Q')
MIDR = {"cortex-a53": (0x41, 0x0, 0xd03, 4), "cortex-a55": (0x41, 0x2, 0xd05, 0),
        "cortex-a72": (0x41, 0x0, 0xd08, 3), "cortex-a76": (0x41, 0x4, 0xd0b, 1),
        "neoverse-n1": (0x41, 0x3, 0xd0c, 1), "max": (0x00, 0x0, 0x051, 0)}
#: the CPU the device tests run as (a Raspberry Pi 5's core)
TEST_CPU = "cortex-a76"
#: Linux arm64 hwcap names, bit by bit (arch/arm64/kernel/cpuinfo.c)
HWCAP_NAMES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
               "jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat "
               "ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2_NAMES = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm "
                "svef32mm svef64mm svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 "
                "sme").split()


def emulated_cpuinfo(root: str, cpu: str) -> str:
    """An aarch64 /proc/cpuinfo for ``cpu``, written under ROOT/work; its path inside the root.

    qemu-user 7.2 shows the guest the host's (x86) /proc/cpuinfo; XNNPACK's cpuinfo library
    then finds no ARM core and XNNPACK stays off: every op runs on LiteRT's built-in kernels
    (0 delegate partitions, measured). Each emulated run gets this file over /proc/cpuinfo in
    its own mount namespace: the MIDR of ``cpu`` and the features the process sees (read
    with getauxval under QEMU_CPU), one block per host CPU (as /sys lists them)."""
    if cpu.split(",")[0] not in MIDR:  # a model, then qemu properties (max,sme=off)
        raise SystemExit(f"error: no MIDR known for the emulated CPU {cpu}; known: "
                         f"{', '.join(MIDR)}")
    probe = chroot(root, under_qemu([f"{VENV}/bin/python", "/src/tools/arm64/cross_arch.py",
                                     "features"], cpu),
                   env={"QEMU_CPU": cpu}, capture_output=True, text=True)
    if probe.returncode:
        raise SystemExit(f"error: QEMU_CPU={cpu} does not run: "
                         + " ".join(probe.stderr.strip().splitlines()[-1:]))
    seen = json.loads(probe.stdout)
    names = [n for i, n in enumerate(HWCAP_NAMES) if seen["hwcap"] >> i & 1] + \
            [n for i, n in enumerate(HWCAP2_NAMES) if seen["hwcap2"] >> i & 1]
    implementer, variant, part, revision = MIDR[cpu.split(",")[0]]
    block = (f"BogoMIPS\t: 50.00\nFeatures\t: {' '.join(names)}\n"
             f"CPU implementer\t: 0x{implementer:02x}\nCPU architecture: 8\n"
             f"CPU variant\t: 0x{variant:x}\nCPU part\t: 0x{part:03x}\n"
             f"CPU revision\t: {revision}\n")
    text = "\n".join(f"processor\t: {i}\n{block}" for i in range(os.cpu_count() or 1))
    os.makedirs(os.path.join(root, "work"), exist_ok=True)
    with open(os.path.join(root, "work", f"cpuinfo-{cpu}"), "w") as f:
        f.write(text + "\n")
    return f"/work/cpuinfo-{cpu}"


def emulated(root: str, argv: list, cpu: str, env: dict | None = None, **kwargs):
    """Run ``argv`` in the root as ``cpu``: in a mount namespace of its own, with /proc, the
    host's /sys and the emulated CPU's /proc/cpuinfo mounted (all gone when it exits)."""
    cpuinfo = emulated_cpuinfo(root, cpu)
    q = shlex.quote
    script = " && ".join([
        f"mount -t proc proc {q(root)}/proc", f"mount --bind /sys {q(root)}/sys",
        f"mount --bind {q(root + cpuinfo)} {q(root)}/proc/cpuinfo",
        f"exec chroot {q(root)} {shlex.join(argv)}"])
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], env={**CLEAN_ENV, "QEMU_CPU": cpu, **(env or {})},
                            **kwargs)


def tree_key(images: str | None, limit: int) -> str:
    """What the cross-architecture models depend on: edgecnn's code and the images."""
    import cross_arch

    digest = hashlib.sha256(json.dumps([images and os.path.abspath(images), limit,
                                        cross_arch.RESOLUTION, cross_arch.FAMILIES]).encode())
    for base in ("edgecnn", "tools/arm64"):
        for folder, dirs, files in sorted(os.walk(os.path.join(ROOT, base))):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".py", ".json", ".txt")):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, ROOT).encode())
                    with open(path, "rb") as f:
                        digest.update(f.read())
    return digest.hexdigest()


def prepare(root: str, images: str | None, limit: int) -> str:
    import cross_arch

    work = os.path.join(root, "work", "cross_arch")
    key = tree_key(images, limit)
    stamp = os.path.join(work, "key")
    if os.path.exists(stamp) and open(stamp).read() == key:
        say("reusing the cross-architecture models (edgecnn and the images unchanged)")
        return work
    say(f"converting one int8 model per family ({len(cross_arch.FAMILIES)}) at "
        f"{cross_arch.RESOLUTION} px on x86")
    start = time.time()
    host(["tools/arm64/cross_arch.py", "prepare", work, "--limit", str(limit),
          *(["--images", images] if images else [])])
    with open(stamp, "w") as f:
        f.write(key)
    say(f"converted in {time.time() - start:.0f} s")
    return work


def host(args: list) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    if subprocess.run([sys.executable, *args], cwd=ROOT, env=env).returncode:
        raise SystemExit(f"error: {' '.join(args[:2])} failed on x86")


def device_tests(root: str, select: str | None) -> int:
    fixtures = os.path.join(root, "fixtures")
    say("making the device tests' models and data on x86 (tests/device_fixtures.py)")
    host(["tests/device_fixtures.py", fixtures])
    say(f"running the device tests on aarch64 as {TEST_CPU} ({len(DEVICE_TESTS)} files, "
        f"-m device)")
    start = time.time()
    proc = emulated(root, ["/bin/sh", "-c", "cd /src && exec " + shlex.join([
        f"{VENV}/bin/python", "-m", "pytest", "-n", "2", "-m", "device and not slow", "-p",
        "no:cacheprovider", "--timeout", "1800", "-q", *(["-k", select] if select else []),
        *DEVICE_TESTS])], TEST_CPU, env={"EDGECNN_DEVICE_FIXTURES": "/fixtures",
                                         "TF_CPP_MIN_LOG_LEVEL": "2"})
    proc.wait()
    say(f"device tests: exit {proc.returncode} in {time.time() - start:.0f} s")
    return proc.returncode


def cross_check(root: str, work: str, cpus: list, results: str | None) -> int:
    say(f"running the models on x86 and on aarch64 as {', '.join(cpus)}")
    start = time.time()
    procs = {cpu: emulated(root, under_qemu([f"{VENV}/bin/python",
                                             "/src/tools/arm64/cross_arch.py", "run",
                                             "/work/cross_arch", "--tag", cpu_tag(cpu)], cpu),
                           cpu, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for cpu in cpus}
    host(["tools/arm64/cross_arch.py", "run", work, "--tag", "x86_64"])
    for cpu, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"error: the aarch64 run as {cpu} failed: "
                             + " ".join(err.strip().splitlines()[-1:]))
    say(f"ran in {time.time() - start:.0f} s")
    problems = []
    for cpu in cpus:
        with open(os.path.join(work, "outputs", f"{cpu_tag(cpu)}.json")) as f:
            seen = json.load(f)
        for feature, wanted in CPUS.get(cpu, {}).items():
            if seen.get(feature) != wanted:
                problems.append(f"QEMU_CPU={cpu} did not reach the process: {feature} is "
                                f"{seen.get(feature)}, expected {wanted}")
    with open(os.path.join(work, "outputs", "x86_64.json")) as f:
        x86 = json.load(f)["partitions"]
    for cpu in cpus:
        with open(os.path.join(work, "outputs", f"{cpu_tag(cpu)}.json")) as f:
            arm = json.load(f)["partitions"]
        for family, count in arm.items():
            if count != x86[family]:  # 0: XNNPACK off, the built-in kernels ran instead
                problems.append(f"{family} as {cpu}: {count} XNNPACK partition(s) on aarch64, "
                                f"{x86[family]} on x86")
    args = ["tools/arm64/cross_arch.py", "compare", work]
    if results:
        args += ["--markdown", os.path.join(results, "cross_arch.md"),
                 "--json", os.path.join(results, "cross_arch.json")]
    env = dict(os.environ, PYTHONPATH=ROOT)
    compared = subprocess.run([sys.executable, *args], cwd=ROOT, env=env)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems or compared.returncode else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(ROOT, ".cache", "arm64-root"))
    parser.add_argument("--cpus", default=";".join(CPUS),
                        help="QEMU_CPU values separated by ';' (a model, then properties)")
    parser.add_argument("--images", help="photos for the cross-architecture check (default: "
                                         "the photos shipped in PyPI packages)")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--results", help="also write cross_arch.{md,json} here")
    parser.add_argument("-k", dest="select", help="only the device tests matching (pytest -k)")
    parser.add_argument("--skip-tests", action="store_true", help="only the cross check")
    parser.add_argument("--qemu", metavar="PATH",
                        help="a static qemu-aarch64 to run the CPU checks with (e.g. 10.0 "
                        "from Debian 13's qemu-user, whose SME emulation is right: --cpus "
                        "max) instead of the binfmt handler's")
    parser.add_argument("--check-host", action="store_true",
                        help="only check (and set up) root, qemu-user and binfmt")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        check_host()
    except Refusal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check_host:
        return 0
    root = os.path.abspath(args.root)
    build_root(root)
    _network(root)
    copy_tree(root)
    install(root)
    if args.qemu:
        say(f"the CPU checks run under {use_qemu(root, os.path.abspath(args.qemu))}")
    work = prepare(root, args.images, args.limit)
    failed = 0 if args.skip_tests else device_tests(root, args.select)
    checked = cross_check(root, work, [c for c in args.cpus.split(";") if c], args.results)
    say(f"{'passed' if not (failed or checked) else 'FAILED'} in {time.time() - start:.0f} s")
    return 1 if failed or checked else 0


if __name__ == "__main__":
    sys.exit(main())
