"""Golden fixtures for the ``tf_efficientnet`` layout, made by the REAL TensorFlow reference code.

The reference EfficientNet / EfficientNet-Lite implementation (github.com/tensorflow/tpu,
``models/official/efficientnet/``) is not a package: fetch the repository, and pass the
folder that holds ``efficientnet_model.py`` (it is put on ``sys.path`` as the reference's own
scripts expect; nothing of it is copied into this repository)::

    git clone https://github.com/tensorflow/tpu /work/upstream/tpu
    PYTHONPATH=. python tools/weights_fixtures/make_tf_reference_fixtures.py \\
        /work/upstream/tpu/models/official/efficientnet [--cases a,b] [--out tests/data/upstream]

Each case builds the network exactly as the reference's ``build_model`` does for evaluation
(``training=False``; ``with tf.variable_scope(model_name)``, the same override that swaps in
``utils.BatchNormalization``), in a TF1 graph, at width 0.5 with 10 classes; gives it
parameters drawn as ``make_upstream_fixtures.py`` does (reference init for the kernels; biases
N(0, 0.05); BatchNorm statistics in units of the live statistics of each BN's input on a
calibration batch, ~1/16 channels per BN with moving_variance = 1e-4); saves every global
variable with ``tf.compat.v1.train.Saver`` (the published checkpoints' names:
``efficientnet-lite0/blocks_3/tpu_batch_normalization_1/moving_variance``, ...) as
``model.ckpt`` + a ``checkpoint`` file; and writes ``io.npz`` (``inputs`` NHWC normalized,
``features`` = the reference's ``pooled_features`` endpoint, ``logits``) and ``meta.json``.

Shims, for TF 2.x (the reference is TF1-style code; none touches its maths):

* ``TF_USE_LEGACY_KERAS=1`` so that ``tf.keras`` / ``tf.compat.v1.layers`` are tf_keras's
  (the TF1 layers the reference subclasses), and graph mode
  (``tf.compat.v1.disable_eager_execution``) as under the reference's TPUEstimator;
* absl FLAGS are marked parsed (``utils.eval_batch_norm`` asks ``'optimizer' in FLAGS``).

The published checkpoints also hold ``/ExponentialMovingAverage`` shadows; these fixtures do
not (they would double the size; the reader's EMA handling has its own tests).
"""
import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SEED = 20261129
N_INPUTS = 3
N_CALIB = 8
TINY_VAR = 1e-4
SIZE = 64
INPUT_DESC = ("float32 NHWC, i.i.d. N(0,1) clipped to [-2.5, 2.5]: realistic *normalized* pixel "
              "values, fed straight into the network; no further preprocessing.")

# case -> (reference model name, builder module, what edgecnn calls it)
CASES = collections.OrderedDict([
    ("tf_reference_efficientnet_lite0", ("efficientnet-lite0", "lite.efficientnet_lite_builder")),
    ("tf_reference_efficientnet_b0", ("efficientnet-b0", "efficientnet_builder")),
])


def make_inputs(seed, n, size):
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal((n, size, size, 3)).astype(np.float32), -2.5, 2.5)


def import_reference(folder):
    """The reference modules, with the shims of the module docstring."""
    import tensorflow as tf
    from absl import flags

    tf.compat.v1.disable_eager_execution()
    sys.path.insert(0, folder)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    import importlib
    return tf, importlib


def randomize(tf, sess, images, calib, rng, eps):
    """Biases and BN parameters as in the module docstring, BN by BN in graph order."""
    graph = tf.compat.v1.get_default_graph()
    variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
    for name, v in variables.items():
        if name.endswith("/bias"):
            v.load(rng.standard_normal(v.shape.as_list()).astype(np.float32) * 0.05, sess)
    bn_ops = [op for op in graph.get_operations() if op.type.startswith("FusedBatchNorm")]
    count = 0
    for op in bn_ops:
        scope = _variable_scope_of(op, variables)
        x = sess.run(op.inputs[0], {images: calib})
        mu = x.mean(axis=(0, 1, 2))
        sd = np.maximum(x.std(axis=(0, 1, 2), ddof=1), 1e-3)
        c = mu.shape[0]
        mean = mu + rng.standard_normal(c) * 0.2 * sd
        var = sd ** 2 * (0.3 + 1.7 * rng.random(c))
        gamma = 0.5 + rng.random(c)
        beta = rng.standard_normal(c) * 0.2
        tiny = rng.permutation(c)[:max(1, c // 16)]
        var[tiny] = TINY_VAR
        gamma[tiny] *= (TINY_VAR + eps) ** 0.5 / sd[tiny]
        for param, value in (("moving_mean", mean), ("moving_variance", var),
                             ("gamma", gamma), ("beta", beta)):
            variables[f"{scope}/{param}"].load(value.astype(np.float32), sess)
        count += 1
    return count


def _variable_scope_of(op, variables):
    """The BN layer's variable scope: follow its moving-mean input back to the variable."""
    t = op.inputs[3].op
    while t.type not in ("VarHandleOp", "VariableV2"):
        t = t.inputs[0].op
    assert t.name.endswith("/moving_mean") and t.name in variables, t.name
    return t.name[:-len("/moving_mean")]


def run_case(case, folder, out_root, seed):
    model_name, builder_name = CASES[case]
    cseed = seed + int(hashlib.sha256(case.encode()).hexdigest()[:6], 16)
    tf, importlib = import_reference(folder)
    builder = importlib.import_module(builder_name)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(cseed)
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="images")
        override = {"width_coefficient": 0.5, "num_classes": 10}
        logits, endpoints = builder.build_model(images, model_name, training=False,
                                                override_params=override)
        pooled = endpoints["pooled_features"]
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            rng = np.random.default_rng(cseed + 2)
            n_bn = randomize(tf, sess, images, make_inputs(cseed + 1, N_CALIB, SIZE), rng, 1e-3)
            x = make_inputs(cseed + 3, N_INPUTS, SIZE)
            out, feats = sess.run([logits, pooled], {images: x})
            feats = feats.reshape(N_INPUTS, -1)
            d = os.path.join(out_root, case)
            os.makedirs(d, exist_ok=True)
            for name in os.listdir(d):
                if name.startswith("model.ckpt") or name == "checkpoint":
                    os.remove(os.path.join(d, name))
            saver.save(sess, os.path.join(d, "model.ckpt"), write_meta_graph=False)
            names = sorted(v.op.name for v in tf.compat.v1.global_variables())
    with open(os.path.join(d, "checkpoint"), "w") as f:  # relative, as a moved folder needs
        f.write('model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n')
    np.savez_compressed(os.path.join(d, "io.npz"), inputs=x, features=feats.astype(np.float32),
                        logits=out.astype(np.float32))
    meta = collections.OrderedDict(
        case=case, package="github.com/tensorflow/tpu models/official/efficientnet",
        version=_commit(folder), tensorflow=tf.__version__,
        constructor=(f"{builder_name}.build_model(images, '{model_name}', training=False, "
                     f"override_params={{'width_coefficient': 0.5, 'num_classes': 10}})"),
        checkpoint="model.ckpt", format="TF1 checkpoint (tf.compat.v1.train.Saver, V2 format: "
        "model.ckpt.index + model.ckpt.data-00000-of-00001 + checkpoint)",
        n_variables=len(names), n_batchnorm=n_bn, variables_sample=names[:3] + names[-3:],
        input_size=[SIZE, SIZE], n_inputs=N_INPUTS, inputs=INPUT_DESC,
        outputs={"logits": list(out.shape), "features": list(feats.shape)},
        features_are="the reference's endpoints['pooled_features'] (head pool, flattened)",
        parameters=(f"seed {cseed}; reference init for kernels; biases N(0,0.05); BN drawn in "
                    "units of live stats, ~1/16 channels per BN with moving_variance=1e-4 "
                    "(see the script docstring)"),
        shims="TF_USE_LEGACY_KERAS=1, graph mode, absl FLAGS marked parsed (see the script "
              "docstring)")
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
    print("%-34s logits std=%.3f feat std=%.3f  %d variables, %.2f MB" % (
        case, out.std(), feats.std(), len(names), size / 1e6))


def _commit(folder):
    try:
        return subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return os.environ.get("TF_REFERENCE_COMMIT", "unknown")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference", help="folder holding efficientnet_model.py (tensorflow/tpu "
                                      "models/official/efficientnet)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "tests", "data", "upstream"))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args(argv)
    for case in a.cases.split(","):
        run_case(case, os.path.abspath(a.reference), os.path.normpath(a.out), a.seed)


if __name__ == "__main__":
    main()
