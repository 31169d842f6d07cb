"""android_demo (the Kotlin app) and `edgecnn export android`, checked without the Android SDK.

There is no Android SDK or phone here. The app's Android-free logic (``core``: the card
reader, frame to input tensor, scores, benchmark statistics and JSON) is compiled with the
real Kotlin compiler and tested on the JVM against the Python side by ``make test-android``
(tests/test_android_jvm.py). Here, in the default suite: every Kotlin file is parsed with
tree-sitter-kotlin, ``core`` is checked to import nothing from Android, the Gradle/manifest/
resource files are cross-checked, and the bundle keys the app reads are compared with what
``edgecnn export android`` writes.
"""
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_cli import LIGHT, assert_one_line_error

from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError
from edgecnn.jobs.export_android import ASSETS, BUNDLE_FILE, LABELS_FILE, export_android
from edgecnn.runtime import tflite as rt
from edgecnn.runtime.card import ModelCard

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

APP = Path(__file__).resolve().parent.parent / "android_demo"
SOURCES = APP / "app" / "src" / "main" / "java" / "dev" / "edgecnn" / "demo"
CORE = SOURCES / "core"
CORE_TESTS = APP / "app" / "src" / "test" / "java" / "dev" / "edgecnn" / "demo" / "core"
#: what core must not import: it is compiled on the JVM without the Android SDK
PLATFORM_IMPORTS = ("android.", "androidx.", "org.tensorflow.", "com.google.", "kotlinx.coroutines")
ASSET_DIR = APP / ASSETS
GRADLE_FILES = [APP / "settings.gradle.kts", APP / "build.gradle.kts",
                APP / "app" / "build.gradle.kts"]
ANDROID_NS = "{http://schemas.android.com/apk/res/android}"
# `edgecnn bench --json`: a list of objects with at least these keys (issue 5), plus the
# source the app stamps on its rows.
BENCH_KEYS = {"model", "threads", "xnnpack", "runs", "init_ms", "first_ms", "mean_ms", "std_ms",
              "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "size_bytes", "source"}


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# --- Kotlin through tree-sitter ---------------------------------------------------------------

@pytest.fixture(scope="module")
def parser():
    import tree_sitter_kotlin
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_kotlin.language()))


def _syntax_errors(tree) -> list[str]:
    found, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{node.type} at line {node.start_point[0] + 1}: "
                         f"{node.text[:60].decode(errors='replace')!r}")
        stack.extend(node.children)
    return found


def _nodes(node, kind):
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == kind:
            yield n
        stack.extend(reversed(n.children))


def _literal(node) -> str | None:
    """The text of a plain string literal (no templates), else None."""
    if node is None or node.type != "string_literal":
        return None
    if any(c.type not in ('"', "string_content") for c in node.children):
        return None
    return node.text.decode()[1:-1]


def _method_call(call):
    """(receiver node, method name, first argument's string literal) of `recv.m("x", ...)`."""
    callee = call.children[0]
    if callee.type != "navigation_expression":
        return None
    args = next((c for c in call.children if c.type == "value_arguments"), None)
    first = next((c for c in args.children if c.type == "value_argument"), None) if args else None
    literal = _literal(first.children[-1]) if first is not None else None
    return callee.children[0], callee.children[-1].text.decode(), literal


JSON_OBJECT_GETTERS = {"getJSONObject", "optJSONObject"}
JSON_KEY_READERS = {"getString", "optString", "getInt", "optInt", "getLong", "optLong",
                    "getDouble", "optDouble", "getBoolean", "optBoolean", "getJSONObject",
                    "optJSONObject", "getJSONArray", "optJSONArray", "isNull", "has", "get",
                    "opt"}


def json_reads(parser, path: Path, roots: set[str]) -> list[tuple[tuple, str, str]]:
    """Every key the Kotlin file reads from the JSON objects named ``roots``, as
    (path of the object, key, method): `val input = root.getJSONObject("input")` then
    `input.getInt("zero_point")` gives (("input",), "zero_point", "getInt"). A read whose
    object cannot be traced back to a root fails: the file must stay checkable."""
    tree = parser.parse(path.read_bytes())
    objects = {name: () for name in roots}

    def object_path(node):
        if node.type == "identifier":
            return objects.get(node.text.decode())
        if node.type == "call_expression":
            parts = _method_call(node)
            if parts and parts[1] in JSON_OBJECT_GETTERS and parts[2] is not None:
                parent = object_path(parts[0])
                return None if parent is None else parent + (parts[2],)
        return None

    for decl in _nodes(tree.root_node, "property_declaration"):
        names = [c for c in decl.children if c.type == "variable_declaration"]
        value = decl.children[-1]
        if names and value.type == "call_expression":
            resolved = object_path(value)
            if resolved is not None:
                objects[names[0].children[0].text.decode()] = resolved
    reads = []
    for call in _nodes(tree.root_node, "call_expression"):
        parts = _method_call(call)
        if parts and parts[1] in JSON_KEY_READERS and parts[2] is not None:
            parent = object_path(parts[0])
            assert parent is not None, \
                f"{path.name}: cannot tell which JSON object {call.text.decode()!r} reads"
            reads.append((parent, parts[2], parts[1]))
    return reads


def _check_reads(reads, document, what):
    """Each key read exists where the code looks for it, with a value its getter accepts."""
    nullable = {(p, k) for p, k, m in reads if m == "isNull"}
    for parent, key, method in reads:
        obj = document
        for step in parent:
            assert isinstance(obj, dict) and step in obj, f"{what} has no {'.'.join(parent)}"
            obj = obj[step]
        where = ".".join(parent + (key,))
        assert isinstance(obj, dict) and key in obj, f"Kotlin reads {where}, {what} has no such key"
        value = obj[key]
        if method in ("isNull", "has", "get", "opt"):
            continue
        if value is None:
            assert method.startswith("opt") or (parent, key) in nullable, \
                f"{where} is null in {what}; Kotlin reads it with {method}"
            continue
        expected = {"String": str, "Int": int, "Long": int, "Double": (int, float),
                    "Boolean": bool, "JSONObject": dict, "JSONArray": list}[method[3:]]
        assert isinstance(value, expected) and not (expected is not bool and
                                                    isinstance(value, bool)), \
            f"Kotlin reads {where} with {method}, {what} has {value!r}"


def test_every_kotlin_file_parses(parser):
    files = sorted(APP.rglob("*.kt")) + GRADLE_FILES
    names = {f.name for f in files}
    assert {"MainActivity.kt", "BenchmarkActivity.kt", "ModelCard.kt", "Classifier.kt",
            "Benchmark.kt"} <= names
    for path in files:
        errors = _syntax_errors(parser.parse(path.read_bytes()))
        assert not errors, f"{path.relative_to(APP)}: {errors[:3]}"


def test_the_parse_check_catches_broken_kotlin(parser):
    """The check above can fail: a missing brace and a stray token are reported."""
    assert _syntax_errors(parser.parse(b"class A { fun f() { val x = 1 }"))
    assert _syntax_errors(parser.parse(b"fun f() { val = ) }"))


def test_core_imports_nothing_from_android():
    """core (and its tests) compile on a plain JVM: no Android, AndroidX, LiteRT or coroutines
    import; the Android classes use core, not the other way round."""
    files = sorted(CORE.glob("*.kt")) + sorted(CORE_TESTS.glob("*.kt"))
    assert {"ModelCard.kt", "ModelInput.kt", "Resample.kt", "Scores.kt", "BenchReport.kt",
            "Stats.kt"} <= {f.name for f in files}
    for path in files:
        text = path.read_text()
        assert re.search(r"^package dev\.edgecnn\.demo\.core$", text, re.M), path.name
        imports = re.findall(r"^import\s+([\w.]+)", text, re.M)
        bad = [i for i in imports if i.startswith(PLATFORM_IMPORTS) or
               (i.startswith("dev.edgecnn.demo.") and not i.startswith("dev.edgecnn.demo.core."))]
        assert not bad, f"{path.name} imports {bad}"
    # the thin Android side reads cards and ranks scores only through core
    for path in SOURCES.glob("*.kt"):
        text = path.read_text()
        assert "JSONObject(" not in text or path.name == "ModelAssets.kt", path.name
        assert "fun softmax" not in text and "getJSONObject(\"input\")" not in text, path.name


def test_the_bundled_card_is_from_the_current_card_writer():
    """The app's bundled card has exactly the keys the card writer writes now (the Kotlin
    reader parses the cards of every family and precision in make test-android)."""
    fields = {f.name for f in dataclasses.fields(ModelCard)} - {"path", "extra", "training"}
    bundle = json.loads((ASSET_DIR / BUNDLE_FILE).read_text())
    card = json.loads((ASSET_DIR / bundle["card"]).read_text())
    assert set(card) == fields, "the bundled card is not from the current card writer"
    assert card == ModelCard.read(ASSET_DIR / bundle["model"]).to_dict()


def test_bundle_keys_the_app_reads_are_written_by_export(parser):
    reads = json_reads(parser, SOURCES / "ModelAssets.kt", {"bundle"})
    assert {k for _, k, _ in reads} >= {"model", "card"}
    _check_reads(reads, json.loads((ASSET_DIR / BUNDLE_FILE).read_text()), BUNDLE_FILE)


def _bench_json_keys(parser) -> set[str]:
    tree = parser.parse((CORE / "BenchReport.kt").read_bytes())
    keys = set()
    for call in _nodes(tree.root_node, "call_expression"):
        parts = _method_call(call)
        if parts and parts[1] == "put" and parts[2] is not None:
            keys.add(parts[2])
    return keys


def test_benchmark_json_has_the_bench_schema(parser):
    keys = _bench_json_keys(parser)
    assert BENCH_KEYS <= keys, f"missing {BENCH_KEYS - keys}"
    assert re.search(r'const val SOURCE = "android-app"', (CORE / "BenchReport.kt").read_text())


def test_benchmark_json_has_every_key_edgecnn_bench_writes(parser):
    bench = pytest.importorskip("edgecnn.runtime.bench")
    missing = set(bench.RESULT_KEYS) - _bench_json_keys(parser)
    assert not missing, f"BenchReport.kt does not write {missing}"


# --- Gradle, manifest, resources --------------------------------------------------------------

def _catalog():
    return tomllib.loads((APP / "gradle" / "libs.versions.toml").read_text())


def _alias(name: str) -> str:
    return re.sub(r"[-_.]", ".", name)


@pytest.mark.device
def test_version_catalog_has_everything_the_build_files_use():
    catalog = _catalog()
    versions = catalog["versions"]
    libraries = {_alias(k): v for k, v in catalog["libraries"].items()}
    plugins = {_alias(k): v for k, v in catalog["plugins"].items()}
    for entry in [*libraries.values(), *plugins.values()]:
        version = entry.get("version")  # version.ref = "x" reads as {"ref": "x"}
        assert version is not None, f"{entry} has no version"
        if isinstance(version, dict):
            assert version["ref"] in versions, f"{entry} refers to an unknown version"
    used = 0
    for path in GRADLE_FILES:
        code = re.sub(r"//[^\n]*", "", path.read_text())
        for ref in re.findall(r"\blibs\.([A-Za-z0-9_.]+)", code):
            used += 1
            if ref.startswith("plugins."):
                assert ref[len("plugins."):] in plugins, f"{path.name}: libs.{ref}"
            elif ref.startswith("versions."):
                assert ref[len("versions."):] in {_alias(v) for v in versions}, ref
            else:
                assert ref in libraries, f"{path.name}: libs.{ref} is not in the catalog"
    assert used >= 10
    lib = catalog["libraries"]
    assert lib["litert"]["group"] == "com.google.ai.edge.litert"
    assert {lib[k]["name"] for k in ("litert", "litert-gpu", "litert-gpu-api")} == \
        {"litert", "litert-gpu", "litert-gpu-api"}
    assert versions["agp"].startswith("8.")


@pytest.mark.device
def test_app_build_targets_min_sdk_24_and_keeps_tflite_uncompressed():
    text = (APP / "app" / "build.gradle.kts").read_text()
    assert re.search(r"\bminSdk = 24\b", text)
    assert 'noCompress += "tflite"' in text  # ModelAssets memory-maps the model
    wrapper = (APP / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    version = re.search(r"distributionUrl=https\\://services\.gradle\.org/distributions/"
                        r"gradle-(\d+)\.(\d+)(?:\.\d+)?-bin\.zip", wrapper)
    assert version and (int(version[1]), int(version[2])) >= (8, 9)  # AGP 8.7 needs 8.9


@pytest.mark.device
def test_manifest_and_resources_match_the_code():
    manifest = ET.parse(APP / "app" / "src" / "main" / "AndroidManifest.xml").getroot()
    permissions = {e.get(ANDROID_NS + "name") for e in manifest.iter("uses-permission")}
    assert "android.permission.CAMERA" in permissions
    activities = [e.get(ANDROID_NS + "name") for e in manifest.iter("activity")]
    assert sorted(activities) == [".BenchmarkActivity", ".MainActivity"]
    code = {p.stem: p.read_text() for p in SOURCES.glob("*.kt")}
    for activity in activities:
        assert f"class {activity[1:]} : AppCompatActivity()" in code[activity[1:]]
    res = APP / "app" / "src" / "main" / "res"
    layouts = {p.stem: ET.parse(p).getroot() for p in (res / "layout").glob("*.xml")}
    ids = {e.get(ANDROID_NS + "id").split("/")[-1] for root in layouts.values()
           for e in root.iter() if e.get(ANDROID_NS + "id")}
    strings = {e.get("name") for e in ET.parse(res / "values" / "strings.xml").getroot()}
    styles = {e.get("name") for e in ET.parse(res / "values" / "themes.xml").getroot()}
    text = "\n".join(code.values())
    for kind, known in (("layout", set(layouts)), ("id", ids), ("string", strings)):
        for name in set(re.findall(rf"\bR\.{kind}\.(\w+)", text)):
            assert name in known, f"R.{kind}.{name} is used but not defined"
    for root in [manifest, *layouts.values()]:
        for element in root.iter():
            for value in element.attrib.values():
                if value.startswith("@string/"):
                    assert value[len("@string/"):] in strings, value
                if value.startswith("@style/"):
                    assert value[len("@style/"):] in styles, value


# --- edgecnn export android -------------------------------------------------------------------

def copy_app(root: Path) -> Path:
    """A copy of android_demo's project files (not its assets) at ``root``."""
    for rel in ["settings.gradle.kts", "build.gradle.kts", "app/build.gradle.kts",
                "app/src/main/AndroidManifest.xml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(APP / rel, root / rel)
    return root


@pytest.fixture
def app(tmp_path):
    """A copy of android_demo's project files (not its assets) to export into."""
    return copy_app(tmp_path / "android_demo")


@pytest.fixture(scope="module")
def bundled_model():
    return ASSET_DIR / json.loads((ASSET_DIR / BUNDLE_FILE).read_text())["model"]


def _assets(app_dir):
    folder = Path(app_dir) / ASSETS
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.device
def test_bundled_model_is_a_small_int8_model_that_loads(bundled_model):
    card = ModelCard.read(bundled_model).to_dict()
    assert card["precision"] == "int8" and card["io_dtype"] == "uint8" and card["all_int8"]
    assert bundled_model.stat().st_size < 3_000_000
    interpreter = rt.load_interpreter(bundled_model)
    assert rt.input_spec(interpreter)["shape"] == card["input"]["shape"]
    labels = (ASSET_DIR / LABELS_FILE).read_text().splitlines()
    assert len(labels) == card["output"]["shape"][-1]


@pytest.mark.device
def test_export_on_the_light_install_puts_a_loadable_model_in_assets(app, bundled_model,
                                                                     tmp_path):
    """No TensorFlow: the model, its card, labels.txt and the bundle record land in assets."""
    model = tmp_path / "m.tflite"
    shutil.copy(bundled_model, model)
    proc = subprocess.run([sys.executable, "-c", LIGHT, "export", "android", str(model),
                           "--app", str(app)], check=False, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _assets(app) == sorted([BUNDLE_FILE, LABELS_FILE, "m.json", "m.tflite"])
    assets = app / ASSETS
    bundle = json.loads((assets / BUNDLE_FILE).read_text())
    data = (assets / "m.tflite").read_bytes()
    assert data == model.read_bytes()
    assert (bundle["model"], bundle["card"], bundle["labels"]) == ("m.tflite", "m.json",
                                                                   LABELS_FILE)
    assert bundle["sha256"] == hashlib.sha256(data).hexdigest()
    card = json.loads((assets / "m.json").read_text())
    assert card == ModelCard.read(assets / "m.tflite").to_dict()
    interpreter = rt.load_interpreter(assets / "m.tflite")
    logits = rt.run_logits(interpreter, np.zeros((1, *card["input"]["shape"][1:]), np.uint8))
    assert logits.shape == (1, card["output"]["shape"][-1])
    assert (assets / LABELS_FILE).read_text().splitlines()[:2] == ["class 0", "class 1"]


@pytest.mark.device
def test_reexport_replaces_the_bundle_and_writes_the_card_labels(app, bundled_model,
                                                                 tmp_path):
    first = tmp_path / "first.tflite"
    shutil.copy(bundled_model, first)
    export_android(first, app)
    card = ModelCard.read(bundled_model).to_dict()
    classes = card["output"]["shape"][-1]
    labels = [f"kind {i}" for i in range(classes)]
    second = tmp_path / "second.tflite"
    second.write_bytes(rt.embed_card_dict(bundled_model.read_bytes(), {**card, "labels": labels}))
    result = run("export", "android", str(second), "--app", str(app))
    assert result.exit_code == 0, result.output
    assert _assets(app) == sorted([BUNDLE_FILE, LABELS_FILE, "second.json", "second.tflite"])
    assert (app / ASSETS / LABELS_FILE).read_text().splitlines() == labels


def _without_card(data: bytes) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.metadata = [m for m in model.metadata or [] if m.name not in ("edgecnn", b"edgecnn")]
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.device
@pytest.mark.parametrize("case,fragments", [
    ("not_tflite_name", ["is not a .tflite file"]),
    ("missing", ["does not exist"]),
    ("garbage", ["is not a TFLite model"]),
    ("no_card", ["has no edgecnn model card", "edgecnn convert"]),
    ("no_app", ["app folder", "does not exist"]),
    ("not_android_demo", ["is not an android_demo app"]),
    ("other_gradle_project", ["not edgecnn's android_demo"]),
])
def test_bad_input_is_one_line_exit_2_and_assets_untouched(case, fragments, app, bundled_model,
                                                           tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(bundled_model, model)
    target = app
    if case == "not_tflite_name":
        model = tmp_path / "m.json"
        shutil.copy(ASSET_DIR / json.loads((ASSET_DIR / BUNDLE_FILE).read_text())["card"], model)
    elif case == "missing":
        model = tmp_path / "nothere.tflite"
    elif case == "garbage":
        model.write_bytes(b"\x00" * 64)
    elif case == "no_card":
        model.write_bytes(_without_card(bundled_model.read_bytes()))
        assert rt.load_interpreter(model)  # a valid model, only the card is missing
    elif case == "no_app":
        target = tmp_path / "nowhere"
    elif case == "not_android_demo":
        target = tmp_path / "plain"
        target.mkdir()
    elif case == "other_gradle_project":
        (app / "settings.gradle.kts").write_text('rootProject.name = "other"\ninclude(":app")\n')
    assert_one_line_error(run("export", "android", str(model), "--app", str(target)), *fragments)
    assert _assets(target) == []


@pytest.mark.device
def test_a_failed_export_leaves_the_previous_bundle_and_no_temporary_files(
        app, bundled_model, tmp_path, monkeypatch):
    from edgecnn.jobs import export_android as module

    first = tmp_path / "first.tflite"
    shutil.copy(bundled_model, first)
    export_android(first, app)
    before = {name: (app / ASSETS / name).read_bytes() for name in _assets(app)}
    stage, calls = module._stage, []

    def failing_stage(folder, name, payload):
        calls.append(name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return stage(folder, name, payload)

    monkeypatch.setattr(module, "_stage", failing_stage)
    second = tmp_path / "second.tflite"
    shutil.copy(bundled_model, second)
    with pytest.raises(OSError):
        export_android(second, app)
    assert {name: (app / ASSETS / name).read_bytes() for name in _assets(app)} == before


@pytest.mark.device
def test_export_library_refuses_a_model_the_app_cannot_feed(app, bundled_model, tmp_path):
    card = ModelCard.read(bundled_model).to_dict()
    model = tmp_path / "gray.tflite"
    gray = {**card, "input": {**card["input"], "shape": [1, 128, 128, 1]}}
    model.write_bytes(rt.embed_card_dict(bundled_model.read_bytes(), gray))
    with pytest.raises(EdgecnnError, match=r"one square RGB image"):
        export_android(model, app)
    assert _assets(app) == []


@pytest.mark.slow  # a TensorFlow conversion (~20-40 s here); the bundled card is checked always
def test_fresh_conversion_exports_with_its_labels(app, photos, tmp_path):
    """The card writer now (not the bundled card): a labelled int8 conversion, exported."""
    import edgecnn

    model = edgecnn.create_model("mobilenet", alpha=0.25, input_size=96, num_classes=3)
    path = tmp_path / "digits.tflite"
    edgecnn.convert(model, str(path), precision="int8", representative_data=photos(96),
                    labels=["zero", "one", "two"])
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["labels"] == ["zero", "one", "two"] and card["input"]["dtype"] == "uint8"
    bundle = export_android(path, app)
    assert bundle["classes"] == 3 and bundle["io_dtype"] == "uint8"
    assert (app / ASSETS / LABELS_FILE).read_text().splitlines() == ["zero", "one", "two"]
    assert ModelCard.read(app / ASSETS / "digits.tflite").labels == ["zero", "one", "two"]
    assert os.path.getsize(app / ASSETS / "digits.tflite") == bundle["size_bytes"]


# --- make test-android's set-up ---------------------------------------------------------------

def test_kotlin_setup_names_the_missing_debian_packages_in_one_line(monkeypatch, capsys):
    """Without root (or apt-get), make test-android says which Debian packages to install and
    exits 2; it installs nothing."""
    sys.path.insert(0, str(APP.parent / "tools"))
    import kotlin_jvm

    monkeypatch.setitem(kotlin_jvm.DEBIAN, "junit4", "/nonexistent/junit4.jar")
    monkeypatch.setitem(kotlin_jvm.DEBIAN, "libandroid-json-java", "/nonexistent/json.jar")
    monkeypatch.setattr(kotlin_jvm.os, "geteuid", lambda: 1000)
    calls = []
    monkeypatch.setattr(kotlin_jvm.subprocess, "run", lambda *a, **k: calls.append(a))
    assert kotlin_jvm.main(["--setup"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "junit4 libandroid-json-java" in err and "apt-get" in err
    assert calls == []
