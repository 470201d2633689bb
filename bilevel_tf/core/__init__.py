"""What every solver builds on: the bilevel problem (:mod:`.problem`, :mod:`.finite_sum`), second-order products
without a Hessian (:mod:`.autodiff`), algebra on lists of tensors (:mod:`.tensor_ops`), replicas of a
``tf.distribute`` strategy (:mod:`.distribute`), mixed precision (:mod:`.precision`), projections
(:mod:`.constraints`) and the names a user chooses options by (:mod:`.options`, TensorFlow-free).

Importing the package imports none of its modules.
"""
