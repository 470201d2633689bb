"""The paper's synthetic examples (section 3.1, figures 1-2, supp. figure 7 and Table 4) behind
``synthetic_examples/test_synthetic.py``, and PBGD's toy problem behind ``synthetic_examples/pbgd_toy.py``:
:mod:`.config` (the methods, their solver settings and the flags; TensorFlow-free), :mod:`.problems` (the
problems, trials from random starts, cached cells, figures), :mod:`.sweep` (the runner's sweep),
:mod:`.toy_problem` (the toy's functions and its bilevel problem) and :mod:`.pbgd_toy` (the toy's run).
"""
