"""Few-shot learning (paper section 3.3, Table 3) behind the ``few_shot/`` runners: :mod:`.config` (the flags,
the defaults a runner fills in, its solver table and the containers its data loader fills; TensorFlow-free) and
:mod:`.meta_learning` (the bilevel problem, meta-training and meta-testing, loaded once the run folder is open).
"""
