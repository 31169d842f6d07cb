"""Workflows: the jobs the commands run, apart from modeling (``edgecnn.models``), conversion
(``edgecnn.converters``) and the LiteRT runtime (``edgecnn.runtime``), which they combine.

- ``convert``: build, (QAT), calibrate, convert, validate and write the card of one network;
- ``sweep``: width x resolution sweeps (run, store, pick, report);
- ``export_android``: ship a converted model in the Android demo app;
- ``catalog``: the shipped model catalog (``edgecnn list``) and its generator;
- ``train``: float training, QAT and int8 export in a resumable run folder;
- ``evaluate``: a saved Keras model on an image folder (the .tflite side is runtime's).

The CLI imports a job when its command runs, so ``edgecnn list`` and the .tflite commands
stay light; ``train`` and ``evaluate`` import TensorFlow, the others load it when they run.
"""
