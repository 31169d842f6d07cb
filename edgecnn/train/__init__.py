"""Training building blocks: checkpoints and the epoch log (``checkpoints``), Keras
callbacks (``callbacks``), optimizers and BatchNorm momentum (``optim``), the warm-up +
cosine schedule (``schedule``), tf.distribute strategies (``strategy``), TensorBoard events
(``events``). The ``edgecnn train`` workflow that uses them is :mod:`edgecnn.jobs.train`."""
