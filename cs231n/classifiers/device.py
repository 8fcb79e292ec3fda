"""Moving a model between host and GPU: ``model.to("gpu")``, ``model.to("cpu")`` and ``model.device``.

Every model of this package is a flat ``params`` dict plus methods that compute with the array module
of their inputs (see :mod:`cs231n.backend`), so moving a model means moving its arrays: ``params`` and
the few constant arrays a model keeps beside them (named in ``DEVICE_ATTRS``, e.g. a Transformer's
table of positions). ``DeviceModel`` is the one implementation, shared by the captioning models, the
language model, the sequence regressor and the sentence classifiers.

Inputs cross once, explicitly, at a model's public methods (:meth:`DeviceModel._on_device`): a model
on the GPU accepts host numpy arrays (copied to the device once per call) as well as GPU arrays.
Files are always host numpy arrays (``save`` copies GPU arrays to the host); ``load`` gives a CPU model,
to be moved with ``.to("gpu")``.
"""
from cs231n.backend import check_device, is_device_array, params_device, to_device, to_numpy, tree_to_device
from cs231n.workspace import Workspace


class DeviceModel:
    """Mixin for a model whose arrays can live on the host ("cpu") or on a CUDA GPU ("gpu").

    A subclass keeps its weights in ``self.params`` (dict name -> array) and lists in ``DEVICE_ATTRS``
    the names of any other array attributes that computations mix with the weights.
    """

    DEVICE_ATTRS = ()

    @property
    def workspace(self):
        """The model's :class:`cs231n.workspace.Workspace`: the large work buffers that ``loss`` reuses
        from one call to the next (made on first use, emptied by ``to``; ``workspace.clear()`` frees
        them)."""
        ws = self.__dict__.get("_workspace")
        if ws is None:
            ws = self._workspace = Workspace()
        return ws

    @property
    def device(self):
        """Where the parameters live: ``"gpu"`` when they are CuPy arrays, else ``"cpu"`` (read-only)."""
        return params_device(getattr(self, "params", None) or {})

    def to(self, device):
        """Move the parameters (and ``DEVICE_ATTRS``) to ``device``, "cpu" or "gpu"; returns the model.

        Values are kept bit for bit. Raises ValueError for another device name and
        :class:`cs231n.backend.BackendError` when "gpu" is asked for without CuPy or a CUDA device (the
        model is then left as it was).
        """
        check_device(f"{type(self).__name__}.to", device)
        params = tree_to_device(self.params, device)
        extra = {name: tree_to_device(getattr(self, name), device) for name in self.DEVICE_ATTRS
                 if getattr(self, name, None) is not None}
        self.params = params
        for name, value in extra.items():
            setattr(self, name, value)
        self.workspace.clear()  # buffers of the other device
        return self

    def _on_device(self, *arrays):
        """``arrays`` on the model's device: host inputs are copied to the GPU once (None stays None).

        A CPU model gets its inputs as they are (the classic path), unless one is a GPU array: that is
        copied to the host. Returns one array for one argument, else a tuple.
        """
        device = self.device
        moved = []
        for a in arrays:
            if a is not None and (device == "gpu" or is_device_array(a)):
                a = to_device(a, device)
            moved.append(a)
        return moved[0] if len(moved) == 1 else tuple(moved)



def host_arrays(arrays):
    """A dict of the same names with every array as a host numpy array (GPU arrays are copied)."""
    return {name: to_numpy(a) for name, a in arrays.items()}
