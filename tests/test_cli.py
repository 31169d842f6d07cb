"""The edgecnn command, through click's runner and as a real subprocess."""
import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from edgecnn import __version__
from edgecnn.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.device
def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_info_reports_params_macs_preprocessing_and_stages():
    result = run("info", "mobilenet", "--alpha", "0.75")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2,601,976" in out and "325.4 M" in out
    assert "(x - 127.5) / 127.5" in out and "stages" in out


def test_info_json_for_minimalistic_v3_at_a_resolution():
    result = run("info", "mobilenet_v3_large", "--minimalistic", "-r", "160", "--json")
    report = json.loads(result.output)
    assert report["params"] == 3_948_688
    assert report["options"] == {"minimalistic": True}
    assert report["input"]["shape"] == [1, 160, 160, 3]
    assert report["input"]["range"] == [-1.0, 1.0]
    assert all(row["se"] == "-" and row["act"] == "relu" for row in report["blocks"])


def test_info_rho():
    report = json.loads(run("info", "mobilenet", "--rho", "0.5", "--json").output)
    assert report["resolution"] == 112 and report["rho"] == 0.5


@pytest.mark.parametrize("args,fragments", [
    (["info", "mobilenet_v4"], ["unknown model 'mobilenet_v4'", "mobilenet_v2"]),
    (["info", "mobilenet", "--alpha", "0"], ["alpha must be a number > 0"]),
    (["info", "mobilenet", "--alpha", "-0.5"], ["alpha must be a number > 0"]),
    (["info", "mobilenet", "--alpha", "0.01"], ["too small for mobilenet"]),
    (["info", "mobilenet", "-r", "16"], ["16x16 is too small", "at least 32"]),
    (["info", "mobilenet", "-r", "160", "--rho", "0.5"], ["not both"]),
    (["info", "mobilenet", "-O", "groups=3"], ["has no option groups"]),
    (["info", "mobilenet", "--alpha", "abc"], ["'abc' is not a valid float"]),
    (["bogus"], ["No such command 'bogus'"]),
])
def test_bad_input_is_one_line_and_exit_2(args, fragments):
    assert_one_line_error(run(*args), *fragments)


def test_list_shows_every_model_with_params():
    result = run("list", "--json")
    rows = {r["name"]: r for r in json.loads(result.output)}
    from edgecnn.models import list_models

    assert sorted(rows) == list_models()
    assert rows["mobilenet"]["params"] == 4_253_864
    assert rows["mobilenet_v3_small"]["input"] == 224
    assert abs(rows["mobilenet_v2"]["macs"] / 1e6 - 300.8) < 0.1
    table = run("list").output
    assert "mobilenet_v3_large" in table and "5.51 M" in table


@pytest.mark.parametrize("name", ["mobilenet", "mobilenet_v3_small", "shufflenet_v2",
                                  pytest.param("xception", marks=pytest.mark.slow),
                                  pytest.param("efficientnet_b7", marks=pytest.mark.slow)])
def test_shipped_catalog_matches_the_live_models(name):
    """`edgecnn list` reads the shipped catalog; it must say what the code builds
    (regenerate with `python -m edgecnn.jobs.catalog`)."""
    from edgecnn.jobs import catalog

    shipped = {r["name"]: r for r in catalog.load()}
    assert shipped[name] == catalog.build_entry(name)


LIGHT = textwrap.dedent("""
    import sys
    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tf_keras", "tensorflow_model_optimization"):
                raise ImportError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, NoTensorFlow())
    import edgecnn
    assert edgecnn.__version__
    from edgecnn.cli import main
    main(sys.argv[1:])
""")


@pytest.mark.device
def test_light_install_lists_models_from_the_catalog():
    proc = subprocess.run([sys.executable, "-c", LIGHT, "list", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mobilenet_v3_small" in {r["name"] for r in json.loads(proc.stdout)}


@pytest.mark.device
@pytest.mark.parametrize("command", [["list", "--live"], ["info", "mobilenet"]])
def test_light_install_says_which_extra_to_install(command):
    """On the device install (no TensorFlow) model commands name the extra, exit 2."""
    proc = subprocess.run([sys.executable, "-c", LIGHT, *command], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        'error: building or converting a model needs TensorFlow (tensorflow is not installed): '
        'install the full profile with pip install "edgecnn[tf]"']


@pytest.mark.device
def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "edgecnn.cli", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and __version__ in proc.stdout
