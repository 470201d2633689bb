"""Import TensorFlow without its C++ start-up chatter (CUDA probing, oneDNN notices, absl pre-init logs).

They go to file descriptor 2 from C++, so Python cannot filter them: stderr is pointed at /dev/null while
TensorFlow loads and probes its devices, then restored. Anything TensorFlow logs later still shows. They
are kept when a runner is started with ``--verbose 2`` or when ``BILEVEL_TF_TF_LOGS=1``.
"""
from __future__ import annotations

import os
import sys


def wants_tensorflow_logs(argv=None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("BILEVEL_TF_TF_LOGS") == "1":
        return True
    for i, arg in enumerate(argv):
        if arg == "--verbose=2" or (arg == "--verbose" and i + 1 < len(argv) and argv[i + 1] == "2"):
            return True
    return False


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules or wants_tensorflow_logs():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (some embedded interpreters): nothing to hide
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        tf.config.list_physical_devices()  # the CUDA probe ("failed call to cuInit") happens here
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
