"""`edgecnn train`: a run that converts (under MirroredStrategy on two logical CPUs), resume
after Ctrl-C and after a hard kill, the schedule, the log and the command's errors."""
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_digit_folder

from edgecnn.cli import cli

pytest.importorskip("tensorflow")

# A small, fast configuration on the built-in digits (real images): MobileNet V1 has the
# shortest graph (fast to trace and convert).
TINY = ["mobilenet", "--dataset", "digits", "--alpha", "0.25", "-r", "32", "--limit", "300",
        "--batch-size", "16", "--calib-samples", "32"]

# Runs the CLI after splitting the CPU into two logical devices (before TensorFlow starts).
MIRRORED = """
import sys
from edgecnn._keras import tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edgecnn.cli import main
main(sys.argv[1:])
"""


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    return env


#: The command as a terminal starts it: Ctrl-C handled by Python's default handler and not
#: blocked. A child inherits an ignored or blocked SIGINT from the process that starts it;
#: inside a long pytest worker (TensorFlow and other libraries loaded, many tests run) the
#: child was seen ignoring SIGINT (twice in make test-slow, never alone).
CLI = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
       "from edgecnn.cli import main; main()")


def _sigint_state() -> str:
    """This process's SIGINT disposition and mask, for failure messages."""
    return (f"test process SIGINT handler {signal.getsignal(signal.SIGINT)!r}, blocked "
            f"{signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])}")


def _edgecnn(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def _rows(run):
    path = run / "log.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _scalars(logdir):
    """Every (tag, step, value) of the TensorBoard events under ``logdir``."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    found = []
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.append((value.tag, event.step, value.simple_value))
    return found


def _check_run(run, summary, splits, method):
    """The run folder of a finished run: log, TensorBoard, card, .keras, and that the
    reported accuracies are the files' own on the run's validation images."""
    from edgecnn._keras import keras
    from edgecnn.models import layers  # noqa: F401  (registers edgecnn's layers)
    from edgecnn.runtime import tflite as rt
    from edgecnn.runtime.card import ModelCard

    assert json.loads((run / "state.json").read_text())["phase"] == "done"
    rows = _rows(run)
    epochs = summary["epochs"] + summary["qat_epochs"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert [r["phase"] for r in rows] == ["float"] * summary["epochs"] + \
        ["qat"] * summary["qat_epochs"]
    steps = splits.train_count // 16
    assert int(rows[0]["step"]) == steps
    tags = {(tag, step) for tag, step, _ in _scalars(run / "tensorboard" / "train")}
    assert {("epoch_loss", e) for e in range(1, epochs + 1)} <= tags
    assert ("epoch_accuracy", epochs) in {(t, s) for t, s, _ in
                                         _scalars(run / "tensorboard" / "validation")}

    tflite = run / "model_int8.tflite"
    card = ModelCard.read(str(tflite)).to_dict()
    assert card == json.loads((run / "model_int8.json").read_text())
    assert card["qat"] == (method == "qat_int8")
    assert card["all_int8"] and card["xnnpack_partitions"] == 1
    assert card["labels"] == [str(d) for d in range(10)]
    training = card["training"]
    assert training["method"] == method
    assert training["float_val_accuracy"] == summary["float_val_accuracy"]
    assert training["tflite_val_accuracy"] == summary["int8_val_accuracy"]

    images, labels = splits.val_arrays()
    assert len(images) == training["val_images"] == splits.val_count
    logits = rt.run_logits(rt.load_interpreter(str(tflite)), images)
    assert round(100 * float(np.mean(logits.argmax(1) == labels)), 2) == \
        summary["int8_val_accuracy"]

    # model.keras: the float model, raw pixels in, logits out, as evaluated
    model = keras.models.load_model(str(run / "model.keras"), compile=False)
    keras_acc = float(np.mean(model.predict(images.astype(np.float32), verbose=0).argmax(1)
                              == labels))
    assert abs(100 * keras_acc - summary["float_val_accuracy"]) <= 100 / len(labels) + 1e-6


def test_mirrored_on_two_cpus_trains_and_converts(tmp_path):
    """A short run under MirroredStrategy on two logical CPU devices, converted to an
    integer-only int8 .tflite whose card carries the run's validation accuracies (QAT under
    the strategy: test_mirrored_fine_tuning_from_a_pytorch_checkpoint_...)."""
    from edgecnn.data.pipeline import make_splits

    args = TINY + ["--epochs", "1", "--int8"]

    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", MIRRORED, "train", *args, "--strategy",
                           "mirrored", "-o", str(run), "--json"],
                          capture_output=True, text=True, env=_env(), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["strategy"] == "MirroredStrategy" and summary["replicas"] == 2
    splits = make_splits(32, dataset="digits", limit=int(args[args.index("--limit") + 1]),
                         batch_size=16)
    _check_run(run, summary, splits, "ptq_int8")


@pytest.mark.slow
def test_mirrored_fine_tuning_from_a_pytorch_checkpoint_exports_the_same_network(tmp_path):
    """--weights PATH (torchvision's ShuffleNet V2 layout, symmetric padding, ImageNet
    mean/std) under MirroredStrategy: the exported model is rebuilt outside the strategy with
    the options and preprocessing the checkpoint set, so the .tflite computes what was
    trained (its accuracy is the Keras model's). One QAT epoch under the strategy too."""
    from edgecnn.data.pipeline import make_splits

    checkpoint = os.path.join(os.path.dirname(__file__), "data", "upstream",
                              "torchvision_shufflenet_v2", "torchvision_shufflenet_v2.pth")
    args = ["shufflenet_v2", "--dataset", "digits", "--alpha", "0.5", "-r", "64", "--limit",
            "300", "--batch-size", "16", "--calib-samples", "32", "--epochs", "1", "--qat-epochs",
            "1", "--weights", checkpoint]
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", MIRRORED, "train", *args, "--strategy",
                           "mirrored", "-o", str(run), "--json"],
                          capture_output=True, text=True, env=_env(), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    card = json.loads((run / "model_int8.json").read_text())
    assert card["model"]["options"]["padding"] == "torch"
    assert card["model"]["options"]["layout"] == "torchvision"
    assert card["model"]["weights"].startswith("torchvision_shufflenet_v2:")
    assert card["preprocessing"]["mean"] == pytest.approx([123.675, 116.28, 103.53])
    splits = make_splits(64, dataset="digits", limit=300, batch_size=16)
    _check_run(run, summary, splits, "qat_int8")
    assert int(_rows(run)[-1]["step"]) == splits.train_count // 16  # QAT: a new optimizer


def _wait_for_rows(proc, run, count, timeout=600, output=None):
    """Until ``count`` epochs are logged and in state.json; ``output()`` (default: the
    process's stdout) is shown if the process ends first."""
    start = time.time()
    while len(_rows(run)) < count or not (run / "state.json").exists() or \
            json.loads((run / "state.json").read_text())["epochs_done"] < count:
        assert proc.poll() is None, (output or proc.stdout.read)()[-3000:]
        assert time.time() - start < timeout, "no epoch finished in time"
        time.sleep(0.05)


def _checkpointed_rows(run):
    """The log rows of the epochs whose checkpoint landed, read as a resume reads them
    (a kill between an epoch's row and its checkpoint leaves a row that the resume drops:
    that epoch is run again)."""
    from edgecnn.train.checkpoints import checkpoint_epoch

    landed = checkpoint_epoch(str(run / "checkpoints" / "float"))
    return landed, [r for r in _rows(run) if int(r["epoch"]) <= landed]


def _kill_mid_epoch(proc, run, after_epochs, sig):
    """Wait for ``after_epochs`` completed epochs, then signal the run ~40 % into the next
    epoch, judged by the shortest epoch logged: a process's first epoch also builds the
    graph (8 s against 1 s here), and 40 % of it would let several more epochs finish."""
    _wait_for_rows(proc, run, after_epochs)
    steady = min(float(r["seconds"]) for r in _rows(run))
    time.sleep(0.4 * steady)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return out


def _check_resumed(run, epochs, kept):
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert rows[:len(kept)] == kept  # rows of completed epochs are kept as they were
    steps = int(rows[0]["step"])
    # the optimizer state (its step counter too) continued across the interruptions
    assert [int(r["step"]) for r in rows] == [steps * e for e in range(1, epochs + 1)]
    names = os.listdir(run / "checkpoints" / "float")
    assert any(name.startswith(f"ckpt-{epochs}.") for name in names)
    assert os.path.exists(run / "model_float32.tflite") and os.path.exists(run / "model.keras")
    return rows


def test_resume_after_kill_loses_and_repeats_no_epoch(tmp_path):
    """A run killed hard (SIGKILL) in the middle of an epoch continues with --resume from its
    last checkpoint: every epoch is in the log once, in order."""
    run = tmp_path / "run"
    epochs = 4
    proc = _edgecnn("train", *TINY, "--epochs", str(epochs), "-o", str(run))
    _kill_mid_epoch(proc, run, 2, signal.SIGKILL)
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    kept = _rows(run)
    assert 2 <= done < epochs and len(kept) == done

    proc = _edgecnn("train", "--resume", str(run))
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert f"resuming: {done} of {epochs} epochs completed, continuing at epoch {done + 1}" \
        in out
    rows = _check_resumed(run, epochs, kept)

    # resuming a finished run changes nothing
    again = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert again.exit_code == 0 and "already finished" in again.output
    assert _rows(run) == rows


@pytest.mark.slow
def test_resume_after_ctrl_c_then_kill(tmp_path):
    """Ctrl-C says how to resume and exits 130; the resumed run is then killed hard and
    resumed again: no completed epoch lost or repeated."""
    run = tmp_path / "run"
    epochs = 6
    proc = _edgecnn("train", *TINY, "--epochs", str(epochs), "--no-cosine",
                    "--warmup-epochs", "0", "-o", str(run))
    out = _kill_mid_epoch(proc, run, 2, signal.SIGINT)  # two rows: one a steady epoch
    assert proc.returncode == 130, _sigint_state() + "\n" + out[-2000:]
    assert f"edgecnn train --resume {run}" in out and "Traceback" not in out
    before = _rows(run)
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    assert len(before) == done >= 2

    proc = _edgecnn("train", "--resume", str(run))
    out = _kill_mid_epoch(proc, run, done + 1, signal.SIGKILL)
    assert f"resuming: {done} of {epochs} epochs completed, continuing at epoch {done + 1}" \
        in out
    landed, middle = _checkpointed_rows(run)
    assert landed >= done + 1 and middle[:len(before)] == before

    proc = _edgecnn("train", "--resume", str(run))
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    _check_resumed(run, epochs, middle)


@pytest.mark.slow
def test_defaults_learn_a_folder_of_small_digit_images(tmp_path):
    """The default settings learn a new user's folder (issue 11): 1,797 handwritten digits
    as 32x32 PNG files, one sub-folder per class, trained by exactly the command below with
    no other flag; the int8 model reaches 90 % on the stratified 20 % validation split."""
    data = tmp_path / "digits32"
    data.mkdir()
    write_digit_folder(data, limit=1797, classes=10, size=32)
    command = ["train", "mobilenet_v2", "--alpha", "0.35", "--resolution", "64", "--data",
               str(data), "--epochs", "20", "--qat-epochs", "2", "--int8"]
    proc = _edgecnn(*command, cwd=tmp_path)  # the run folder goes to ./runs/
    out, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 0, out[-3000:]
    assert "augment: light (auto: images 32x32 px, below 64 px)" in out
    [run] = glob.glob(str(tmp_path / "runs" / "mobilenet_v2-*"))
    summary = json.loads(open(os.path.join(run, "summary.json")).read())
    assert summary["val_images"] == 359 and summary["train_images"] == 1438
    card = json.loads(open(os.path.join(run, "model_int8.json")).read())
    assert card["training"]["tflite_val_accuracy"] == summary["int8_val_accuracy"]
    assert summary["int8_val_accuracy"] >= 90.0, summary
    config = json.loads(open(os.path.join(run, "config.json")).read())
    assert config["augment"] == "auto" and config["augmentation"]["preset"] == "light"


def test_warmup_cosine_schedule():
    from edgecnn.train.schedule import WarmupCosine

    schedule = WarmupCosine(0.1, total_steps=100, warmup_steps=10)
    lr = np.array([float(schedule(step)) for step in range(100)])
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1)
    assert np.all(np.diff(lr[:10]) > 0) and np.all(np.diff(lr[10:]) <= 1e-12)
    assert lr[55] == pytest.approx(0.05, rel=1e-3)  # half way through the cosine
    assert lr[99] < 1e-3
    flat = WarmupCosine(0.1, total_steps=100, warmup_steps=0, cosine=False)
    assert float(flat(0)) == float(flat(99)) == pytest.approx(0.1)


def test_log_keeps_only_checkpointed_epochs(tmp_path):
    from edgecnn.train.checkpoints import LOG_COLUMNS, CsvLog

    log = CsvLog(str(tmp_path / "log.csv"))
    for epoch in (1, 2, 3):
        log.append({c: epoch if c == "epoch" else "x" for c in LOG_COLUMNS})
    log.keep_through(2)
    assert [r["epoch"] for r in log.rows()] == ["1", "2"]


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_command_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    _one_line_error(runner.invoke(cli, ["train", "--dataset", "digits"]), "model NAME")
    _one_line_error(runner.invoke(cli, ["train", "mobilenet_v2"]), "--data DIR")
    _one_line_error(runner.invoke(cli, ["train", "mobilenet_v2", "--dataset", "digits",
                                        "--data", str(tmp_path)]), "not both")
    _one_line_error(runner.invoke(cli, ["train", "--resume", str(tmp_path)]),
                    "not a run folder")
    _one_line_error(runner.invoke(cli, ["train", "mobilenetv2", "--dataset", "digits"]),
                    "did you mean mobilenet_v2")
    _one_line_error(runner.invoke(cli, ["train", "mobilenet_v2", "--dataset", "digits",
                                        "--label-smoothing", "1.5"]), "--label-smoothing")
    (tmp_path / "config.json").write_text("{}")
    _one_line_error(runner.invoke(cli, ["train", "mobilenet_v2", "--dataset", "digits", "-o",
                                        str(tmp_path)]), "--resume")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    _one_line_error(runner.invoke(cli, ["train", "mobilenet_v2", "--dataset", "digits",
                                        "--strategy", "multiworker", "-o",
                                        str(tmp_path / "new")]), "TF_CONFIG")
