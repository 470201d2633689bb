"""Import TensorFlow without its C++ start-up chatter (CUDA probing, oneDNN notices, absl pre-init logs).

They go to file descriptor 2 from C++, so Python cannot filter them: stderr is pointed at /dev/null while
TensorFlow loads and probes its devices, then restored. Anything TensorFlow logs later still shows.

``import bilevel_tf`` changes nothing here (it does not import TensorFlow, so a runner's ``--help`` answers at
once). A runner's parser (:class:`bilevel_tf.runner.console.ArgumentParser`) calls :func:`quiet_tensorflow_start`
once its flags are parsed: it installs :class:`QuietTensorFlowFinder`, which makes the first ``import
tensorflow`` of that process (``import keras`` included) a quiet one, unless ``--verbose 2`` or
``BILEVEL_TF_TF_LOGS=1`` asks for the logs.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

from ..training.terminal import stderr_silenced


def wants_tensorflow_logs(verbose: int) -> bool:
    return verbose >= 2 or os.environ.get("BILEVEL_TF_TF_LOGS") == "1"


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr silenced, then probes the devices (also silenced)."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        module.__loader__ = module.__spec__.loader = self.loader  # TensorFlow sees its own loader
        with stderr_silenced():
            self.loader.exec_module(module)
            module.config.list_physical_devices()


class QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """A meta path entry that hands the first ``import tensorflow`` to :class:`_QuietLoader`, then leaves."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        _uninstall()
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_start(verbose: int = 1) -> None:
    """Make this process's first ``import tensorflow`` quiet (no-op once TensorFlow is loaded, or with
    ``verbose >= 2`` or ``BILEVEL_TF_TF_LOGS=1``)."""
    if "tensorflow" in sys.modules or wants_tensorflow_logs(verbose):
        return
    if not any(isinstance(f, QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlowFinder())


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, QuietTensorFlowFinder)]
