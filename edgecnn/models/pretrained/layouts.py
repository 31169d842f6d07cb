"""Upstream checkpoint layouts: how each published state_dict maps onto edgecnn's layers.

A layout names the networks it fits, recognizes its keys, and puts its modules in the order
the upstream code registers them (a checkpoint file need not keep that order: safetensors
stores tensors by dtype and name). That order is the order in which edgecnn creates the
matching layers, so the importer pairs them one to one and checks every pair's kind and
shape; nothing is matched by guessing.

``order`` lists, for modules with named children, the registration order of those names:
the first list that contains all of a module's named children is used (so a more specific
list comes first: timm's depthwise-separable block before its inverted residual). Numbered
children (``nn.Sequential`` entries, blocks) go by number; so do children named by a
``numbered`` prefix and a number (TensorFlow's ``blocks_12``), at the prefix's place in
``order``.

Keys are PyTorch's ``<module path>.<param>`` unless the layout says otherwise: ``sep`` splits
TensorFlow's ``<scope>/<layer>/<variable>``, ``scoped`` drops a leading scope that varies
between checkpoints (the model name, ``efficientnet-lite0/``; signatures are written without
it), ``param_names`` renames variables to PyTorch's (``gamma`` -> ``weight``, ...) and
``weight_format`` says how kernels are stored (``"torch"``: OIHW, linear (out, in); ``"tf"``:
HWIO, depthwise (kh, kw, C, m), dense (in, out), as keras keeps them).

Each layout also states what its weights were trained with: BatchNorm epsilon (folded into
gamma on import when edgecnn's layer differs), padding (``"torch"``: symmetric, which
edgecnn then builds), the channel order of the first conv's input, and the preprocessing.
Sources and versions of the facts: tests/data/upstream/README.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import (CENTER_CROP_0875, IMAGENET_MEAN_STD, MINUS_ONE_TO_ONE,
                        TF_EFFICIENTNET_EVAL, Preprocessing)

#: EfficientNet-Lite's reference preprocessing: (x - 127) / 128 (tensorflow/tpu
#: models/official/efficientnet/lite/efficientnet_lite_builder.py MEAN_RGB / STDDEV_RGB).
LITE = Preprocessing((127.0,) * 3, (128.0,) * 3,
                     description="RGB 0-255 as (x - 127) / 128 (the EfficientNet-Lite reference)",
                     **TF_EFFICIENTNET_EVAL)
#: The TensorFlow EfficientNet B0-B7 weights (and their ports): ImageNet mean/std, the
#: reference's evaluation crop.
TF_IMAGENET = IMAGENET_MEAN_STD.with_eval(**TF_EFFICIENTNET_EVAL)
#: timm's own EfficientNets and MobileNetV3s (pretrained_cfg: crop_pct 0.875, bicubic).
TIMM_IMAGENET = IMAGENET_MEAN_STD.with_eval(crop=0.875, resize="bicubic")
#: torchvision's EfficientNet IMAGENET1K_V1 transforms (crop_size / resize_size, filter).
_TV_EFFICIENTNET = tuple(
    (f"efficientnet_b{i}", IMAGENET_MEAN_STD.with_eval(crop=round(c / r, 6), resize=f))
    for i, (c, r, f) in enumerate(((224, 256, "bicubic"), (240, 256, "bicubic"),
                                   (288, 288, "bicubic"), (300, 320, "bicubic"),
                                   (380, 384, "bicubic"), (456, 456, "bicubic"),
                                   (528, 528, "bicubic"), (600, 600, "bicubic"))))
#: Megvii's released ShuffleNets take BGR 0-255 without normalization; the importer flips the
#: first conv's input channels, so edgecnn's models take RGB 0-255 as they are.
RAW = Preprocessing((0.0,) * 3, (1.0,) * 3, description="RGB 0-255, not normalized",
                    **CENTER_CROP_0875)  # Megvii's eval: OpenCV resize 256, center crop 224
#: torchvision's MobileNets and ShuffleNets (IMAGENET1K_V1: resize 256, crop 224).
TV_IMAGENET = IMAGENET_MEAN_STD.with_eval(**CENTER_CROP_0875)
#: timm's TensorFlow ports of the MobileNets (pretrained_cfg: crop_pct 0.875, bilinear).
TF_SLIM = MINUS_ONE_TO_ONE.with_eval(**CENTER_CROP_0875)


def _like(name: str, pattern: str) -> bool:
    return pattern == "*" or name == pattern or (pattern.endswith("*") and
                                                  name.startswith(pattern[:-1]))


@dataclass(frozen=True)
class Layout:
    """One upstream's checkpoint layout (see the module docstring)."""

    name: str
    upstream: str               # who publishes it (for messages and reports)
    models: tuple               # edgecnn model names (or prefixes ending in "*") it fits
    signature: tuple            # keys whose presence identifies the layout
    order: tuple                # registration order of named children (see above)
    bn_eps: float               # the upstream's BatchNorm epsilon
    options: dict = field(default_factory=dict)  # model options the weights need
    preprocessing: tuple = (("*", TV_IMAGENET),)  # (model pattern, what it expects)
    bgr: bool = False           # the first conv was trained on BGR input
    unit_roles: tuple = ()      # edgecnn role order inside a unit with parallel branches
    hint: str = ""              # file-name fragment telling it from a same-keyed layout
    sep: str = "."              # separates module path parts and the parameter name
    scoped: bool = False        # keys start with a varying scope (the model name): dropped
    param_names: tuple = ()     # (upstream parameter name, PyTorch's) pairs
    weight_format: str = "torch"  # "torch" (OIHW) or "tf" (HWIO, as keras)
    numbered: tuple = ()        # child-name prefixes followed by a number ("blocks_")

    def fits(self, model_name: str) -> bool:
        return any(_like(model_name, m) for m in self.models)

    def preprocessing_for(self, model_name: str) -> Preprocessing:
        return next(p for pattern, p in self.preprocessing if _like(model_name, pattern))

    def local(self, key: str) -> str:
        """``key`` without the varying leading scope (when the layout has one)."""
        return key.split(self.sep, 1)[-1] if self.scoped else key

    def matches(self, keys) -> bool:
        local = {self.local(k) for k in keys} if self.scoped else keys
        return all(k in local for k in self.signature)


_TIMM_ORDER = (
    ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "classifier"),
    ("conv_dw", "bn1", "aa", "se", "conv_pw", "bn2"),                        # DepthwiseSeparable
    ("conv_pw", "bn1", "conv_dw", "bn2", "aa", "se", "conv_pwl", "bn3"),     # InvertedResidual
    ("conv_reduce", "conv_expand"),
    ("conv", "bn1", "aa"),                                                   # ConvBnAct
)
# tensorflow/tpu models/official/efficientnet: tf.layers named by class and uniquified per
# variable scope in call order (efficientnet_model.py MBConvBlock.call, Model.call)
_TF_EFFICIENTNET_ORDER = (
    ("stem", "blocks_", "head"),
    ("conv2d", "tpu_batch_normalization", "dense"),                           # stem, head
    ("conv2d", "conv2d_1"),                                                   # se
    ("depthwise_conv2d", "tpu_batch_normalization", "se", "conv2d",          # no expansion
     "tpu_batch_normalization_1"),
    ("conv2d", "tpu_batch_normalization", "depthwise_conv2d", "tpu_batch_normalization_1",
     "se", "conv2d_1", "tpu_batch_normalization_2"),
)
_TF_PARAMS = (("kernel", "weight"), ("depthwise_kernel", "weight"), ("gamma", "weight"),
              ("beta", "bias"), ("moving_mean", "running_mean"),
              ("moving_variance", "running_var"))
_V2_MAIN_FIRST = ("expand", "expand_bn", "dw", "dw_bn", "project", "project_bn",
                  "shortcut_dw", "shortcut_dw_bn", "shortcut_project", "shortcut_project_bn")
_V2_SHORTCUT_FIRST = _V2_MAIN_FIRST[6:] + _V2_MAIN_FIRST[:6]

LAYOUTS = (
    Layout("torchvision_mobilenet_v2", "torchvision", ("mobilenet_v2",),
           ("features.0.0.weight", "features.1.conv.0.0.weight"),
           (("features", "classifier"), ("conv",)), 1e-5, {"padding": "torch"}),
    Layout("torchvision_mobilenet_v3", "torchvision",
           ("mobilenet_v3_large", "mobilenet_v3_small"),
           ("features.0.0.weight", "features.1.block.0.0.weight"),
           (("features", "classifier"), ("block",), ("fc1", "fc2")), 1e-3,
           {"padding": "torch"}),
    Layout("torchvision_efficientnet", "torchvision", ("efficientnet_b*",),
           ("features.0.0.weight", "features.1.0.block.0.0.weight"),
           (("features", "classifier"), ("block",), ("fc1", "fc2")), 1e-5,
           {"padding": "torch"}, _TV_EFFICIENTNET),
    Layout("torchvision_shufflenet_v2", "torchvision", ("shufflenet_v2",),
           ("conv1.0.weight", "stage2.0.branch1.0.weight"),
           (("conv1", "stage2", "stage3", "stage4", "conv5", "fc"), ("branch1", "branch2")),
           1e-5, {"padding": "torch", "layout": "torchvision"},
           unit_roles=_V2_SHORTCUT_FIRST),
    Layout("megvii_shufflenet_v2", "Megvii (megvii-model/ShuffleNet-Series)", ("shufflenet_v2",),
           ("first_conv.0.weight", "features.0.branch_main.0.weight"),
           (("first_conv", "features", "conv_last", "classifier"),
            ("branch_main", "branch_proj")),
           1e-5, {"padding": "torch", "layout": "megvii"}, (("*", RAW),), bgr=True,
           unit_roles=_V2_MAIN_FIRST),
    Layout("megvii_shufflenet_v1", "Megvii (megvii-model/ShuffleNet-Series)", ("shufflenet",),
           ("first_conv.0.weight", "features.0.branch_main_1.0.weight"),
           (("first_conv", "features", "classifier"),
            ("branch_main_1", "branch_main_2", "branch_proj")),
           1e-5, {"padding": "torch"}, (("*", RAW),), bgr=True),
    Layout("timm_tf", "timm (tf_ ports of the TensorFlow checkpoints)",
           ("efficientnet_b*", "efficientnet_lite*", "mobilenet_v3_large", "mobilenet_v3_small",
            "mobilenet_v2"),
           ("conv_stem.weight", "blocks.0.0.conv_dw.weight"), _TIMM_ORDER, 1e-3, {},
           (("efficientnet_b*", TF_IMAGENET),
            ("efficientnet_lite*", MINUS_ONE_TO_ONE.with_eval(**TF_EFFICIENTNET_EVAL)),
            ("*", TF_SLIM)), hint="tf_"),
    Layout("timm", "timm", ("efficientnet_b*", "efficientnet_lite*", "mobilenet_v3_large",
                            "mobilenet_v3_small", "mobilenet_v2"),
           ("conv_stem.weight", "blocks.0.0.conv_dw.weight"), _TIMM_ORDER, 1e-5,
           {"padding": "torch"}, (("*", TIMM_IMAGENET),)),
    Layout("efficientnet_pytorch", "EfficientNet-PyTorch (lukemelas) and its EfficientNet-Lite "
           "ports", ("efficientnet_b*", "efficientnet_lite*"),
           ("_conv_stem.weight", "_blocks.0._depthwise_conv.weight"),
           (("_conv_stem", "_bn0", "_blocks", "_conv_head", "_bn1", "_fc"),
            ("_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_se_reduce", "_se_expand",
             "_project_conv", "_bn2")),
           1e-3, {}, (("efficientnet_lite*", LITE), ("*", TF_IMAGENET))),
    Layout("tf_efficientnet", "TensorFlow reference (tensorflow/tpu models/official/efficientnet)",
           ("efficientnet_b*", "efficientnet_lite*"),
           ("stem/conv2d/kernel", "blocks_0/depthwise_conv2d/depthwise_kernel"),
           _TF_EFFICIENTNET_ORDER, 1e-3, {},
           (("efficientnet_lite*", LITE), ("*", TF_IMAGENET)),
           sep="/", scoped=True, param_names=_TF_PARAMS, weight_format="tf",
           numbered=("blocks_",)),
)

BY_NAME = {layout.name: layout for layout in LAYOUTS}
