"""The paper's tables (Mehra & Hamm, ACML 2021) beside our runs: our runs pooled per cell (:mod:`.pooling`), the
tables (``python -m bilevel_tf.paper.tables RUNS_DIR``, :mod:`.tables`), and the driver that runs a table's rows
(``python -m bilevel_tf.paper.reproduce``, :mod:`.reproduce`, its rows in :mod:`.plans`). The published numbers
and where one run lands in them are :mod:`bilevel_tf.published`, which the runners read too: this package
drives the runners (:mod:`.plans` reads their method tables), so nothing below it imports it.

Importing the package imports none of its modules.
"""
