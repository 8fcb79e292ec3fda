"""cs231n captioning: recurrent layers as pure numpy functions, a captioning model, a solver and metrics.

Layers live in :mod:`cs231n.rnn_layers` and :mod:`cs231n.layers`; models in :mod:`cs231n.classifiers`;
training in :mod:`cs231n.optim` and :mod:`cs231n.captioning_solver`; data in :mod:`cs231n.coco_utils`
and :mod:`cs231n.image_utils`; scoring in :mod:`cs231n.metrics`; the command line in :mod:`cs231n.cli`.
"""

__version__ = "0.1.0"
