"""Pretrained weights from the checkpoints the ecosystem publishes.

- :mod:`.readers` reads PyTorch (zip and legacy), safetensors, TF checkpoints and keras .h5
  files without torch and without executing anything (:mod:`.torch_pickle`);
- :mod:`.layouts` and :mod:`.importer` map each upstream's keys onto edgecnn's layers
  (torchvision, timm, Megvii, EfficientNet-PyTorch), exactly;
- :mod:`.catalog` (``weights.json``) lists the published weights of every family and
  :mod:`.download` fetches, verifies and caches them.

``create_model(weights=...)`` is the entry point; ``edgecnn weights list|import`` the CLI.
"""
