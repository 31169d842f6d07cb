"""Workflows: the jobs the commands run, apart from modeling (``edgecnn.models``), conversion
(``edgecnn.converters``) and the LiteRT runtime (``edgecnn.runtime``), which they combine.

- ``convert``: build, (QAT), calibrate, convert, validate and write the card of one network;
- ``sweep``: width x resolution sweeps (run, store, pick, report);
- ``export_android``: ship a converted model in the Android demo app;
- ``catalog``: the shipped model catalog (``edgecnn list``) and its generator.

Importing a job is cheap: TensorFlow and LiteRT load when a job runs.
"""
