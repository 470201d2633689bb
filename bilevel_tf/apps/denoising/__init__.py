"""Data denoising (paper section 3.2, Table 2): importance learning behind the four ``data_denoising/`` runners,
and PBGD's data hyper-cleaning behind ``data_denoising/hyper_cleaning/``.

TensorFlow-free, so a runner parses its flags (and answers ``--help``) at once: :mod:`.config` (the spec a
runner fills in, its flags, its solver table, :func:`~.config.run_denoising`), :mod:`.data` (splits, label
noise, the ``tf.data`` streams, built on first use) and :mod:`.hyper_cleaning_config`. Loaded once the run
folder is open: :mod:`.importance` (the bilevel problem, the warm start, the solver), :mod:`.run` (one run in
its folder), :mod:`.evaluation`, :mod:`.per_example_adam` and :mod:`.hyper_cleaning`.
"""
