"""Bilevel solvers; every one is a ``BilevelSolver`` with the same constructor head and ``step``.

The methods are declared in :mod:`.registry`; :mod:`.factory` builds them by name. Importing this package
imports no solver (nor TensorFlow).
"""
