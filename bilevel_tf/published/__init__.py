"""The paper's published numbers (:mod:`.numbers`) and where one run lands in them (:mod:`.cells`), as data.

Both the runners (the ``paper`` entry of results.json, :func:`.cells.paper_entry`) and the paper's tools
(:mod:`bilevel_tf.paper`: pooling, tables, reproduce) read them, so they live below both: nothing here imports
:mod:`bilevel_tf.apps`, :mod:`bilevel_tf.paper` or TensorFlow.

Importing the package imports none of its modules.
"""
