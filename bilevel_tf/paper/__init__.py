"""The paper's tables (Mehra & Hamm, ACML 2021) beside our runs: the published numbers (:mod:`.published`),
where one run lands in them (:mod:`.cells`), our runs pooled per cell (:mod:`.pooling`), the tables
(``python -m bilevel_tf.paper.tables RUNS_DIR``, :mod:`.tables`), and the driver that runs a table's rows
(``python -m bilevel_tf.paper.reproduce``, :mod:`.reproduce`, its rows in :mod:`.plans`).

Importing the package imports none of its modules.
"""
