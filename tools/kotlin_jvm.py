"""``make test-android``: android_demo's Android-free Kotlin compiled and tested on the JVM, here.

Everything in ``android_demo/app/src/main/java/dev/edgecnn/demo/core`` (card reading, frame to
input tensor, output scores, benchmark statistics and JSON) imports nothing from Android,
AndroidX or LiteRT. With no Android SDK to be had, that code and its JUnit tests
(``app/src/test/.../core``) are compiled with the real Kotlin compiler and run here:

- the compiler (``org.jetbrains.kotlin.cli.jvm.K2JVMCompiler``) and ``kotlin-stdlib`` come
  from the PyPI wheel ``kotlin-jupyter-kernel`` (the ``android`` extra of pyproject.toml);
- a JDK, JUnit 4 and Android's own ``org.json`` come from Debian (``openjdk-17-jdk-headless``,
  ``junit4``, ``libandroid-json-java``), installed with apt-get when missing and root.

    python tools/kotlin_jvm.py --setup     # install what is missing (make test-android)
    python tools/kotlin_jvm.py             # compile and run the tests without goldens

The contract tests (the cards ``edgecnn convert`` writes, byte-identical input tensors,
benchmark JSON) need goldens the Python side writes: tests/test_android_jvm.py.
Compiled classes are kept in ``.cache/kotlin-jvm/<hash of the sources>`` (git-ignored).
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "android_demo", "app", "src")
PACKAGE = "dev.edgecnn.demo.core"
MAIN = os.path.join(APP, "main", "java", *PACKAGE.split("."))
TESTS = os.path.join(APP, "test", "java", *PACKAGE.split("."))
CACHE = os.path.join(ROOT, ".cache", "kotlin-jvm")
WHEEL = "kotlin-jupyter-kernel"

#: Debian package -> the file that shows it is installed
DEBIAN = {
    "openjdk-17-jdk-headless": shutil.which("java") or "/usr/bin/java",
    "junit4": "/usr/share/java/junit4.jar",
    "libandroid-json-java": "/usr/share/java/com.android.json.jar",
}
JUNIT = "/usr/share/java/junit4.jar"
HAMCREST = "/usr/share/java/hamcrest-core.jar"
ANDROID_JSON = "/usr/share/java/com.android.json.jar"


class Refusal(Exception):
    """What is missing, in one line."""


def say(message: str) -> None:
    print(f"kotlin-jvm: {message}", file=sys.stderr, flush=True)


def kotlin_jars() -> tuple[str, str]:
    """(the compiler's -all.jar, kotlin-stdlib) from the installed kotlin-jupyter-kernel."""
    spec = importlib.util.find_spec("run_kotlin_kernel")
    if spec is None or not spec.submodule_search_locations:
        raise Refusal(f"the Kotlin compiler is not installed: pip install -e '.[android]' "
                      f"(the {WHEEL} wheel; make test-android installs it)")
    jars = os.path.join(list(spec.submodule_search_locations)[0], "jars")
    compiler = glob.glob(os.path.join(jars, "kotlin-jupyter-kernel-*-all.jar"))
    stdlib = glob.glob(os.path.join(jars, "kotlin-stdlib-[0-9]*.jar"))
    if not compiler or not stdlib:
        raise Refusal(f"{WHEEL} has no compiler jar in {jars}: reinstall it with "
                      f"pip install --force-reinstall -e '.[android]'")
    return compiler[0], stdlib[0]


def missing_debian() -> list[str]:
    missing = [p for p, path in DEBIAN.items() if not os.path.exists(path)]
    if shutil.which("java") is None and "openjdk-17-jdk-headless" not in missing:
        missing.insert(0, "openjdk-17-jdk-headless")
    return missing


def setup() -> None:
    """Install the Debian packages that are missing (root and apt-get), or say which."""
    missing = missing_debian()
    if not missing:
        return
    names = " ".join(missing)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Refusal(f"make test-android needs the Debian packages {names} (a JDK, JUnit 4, "
                      f"Android's org.json): install them with apt-get as root")
    say(f"installing {names} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode:
        # a fresh machine may not have the package lists yet
        for cmd in (["apt-get", "update", "-qq"], install):
            if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode:
                raise Refusal(f"apt-get could not install {names}: install them by hand")
    still = missing_debian()
    if still:
        raise Refusal(f"apt-get installed {names} but {' '.join(still)} is still missing")


def sources() -> tuple[list[str], list[str]]:
    main = sorted(glob.glob(os.path.join(MAIN, "*.kt")))
    tests = sorted(glob.glob(os.path.join(TESTS, "*.kt")))
    if not main or not tests:
        raise Refusal(f"no Kotlin sources in {MAIN} and {TESTS}")
    return main, tests


def test_classes() -> list[str]:
    """The JUnit classes: every *Test.kt of the core tests."""
    return [f"{PACKAGE}.{os.path.basename(p)[:-3]}" for p in sources()[1]
            if p.endswith("Test.kt")]


def classpath(*extra: str) -> str:
    _, stdlib = kotlin_jars()
    return os.pathsep.join([*extra, stdlib, JUNIT, HAMCREST, ANDROID_JSON])


def compile_core() -> tuple[str, float]:
    """The compiled core and its tests: (classes folder, seconds the compiler took; 0 when the
    classes of these exact sources were already there). Safe to call from parallel workers."""
    compiler, stdlib = kotlin_jars()
    main, tests = sources()
    digest = hashlib.sha256()
    for path in [compiler, *main, *tests]:
        digest.update(os.path.basename(path).encode())
        if path != compiler:
            with open(path, "rb") as f:
                digest.update(f.read())
    out = os.path.join(CACHE, digest.hexdigest()[:16])
    done = os.path.join(out, ".compiled")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return os.path.join(out, "classes"), 0.0
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        cmd = ["java", "-cp", compiler, "org.jetbrains.kotlin.cli.jvm.K2JVMCompiler",
               "-no-stdlib", "-no-reflect", "-jvm-target", "17", "-Werror",
               "-classpath", classpath(), "-d", os.path.join(out, "classes"), *main, *tests]
        run = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        # the kernel's jar holds the compiler without its own stdlib: that note is not ours
        messages = [line for line in (run.stdout + run.stderr).splitlines()
                    if line.strip() and "unable to find kotlin-stdlib" not in line]
        if run.returncode:
            raise Refusal("kotlinc failed:\n" + "\n".join(messages[:40]))
        open(done, "w").close()
        return os.path.join(out, "classes"), seconds


def junit(classes: str, names: list[str], properties: dict | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess:
    """Run JUnit 4 on ``names`` (test classes) with ``-Dkey=value`` properties."""
    props = [f"-D{k}={v}" for k, v in (properties or {}).items()]
    return subprocess.run(["java", *props, "-cp", classpath(classes),
                           "org.junit.runner.JUnitCore", *names],
                          capture_output=True, text=True, timeout=timeout)


def main(argv: list[str]) -> int:
    try:
        if "--setup" in argv:
            setup()
            kotlin_jars()
            return 0
        setup()
        classes, seconds = compile_core()
        say(f"compiled in {seconds:.1f} s" if seconds else "compiled classes up to date")
        run = junit(classes, test_classes())
        print(run.stdout[-3000:], end="")
        return run.returncode
    except Refusal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
