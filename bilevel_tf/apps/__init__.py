"""Experiment logic behind the runners, one package per application: :mod:`.denoising` (importance learning
and data hyper-cleaning), :mod:`.few_shot`, :mod:`.poisoning` (data-augmentation and clean-label attacks) and
:mod:`.synthetic` (the paper's synthetic examples and PBGD's toy); :mod:`.classifier` is the trainer the
denoising and poisoning experiments share.

Each runner script stays short and reads like its experiment; what several runners share lives here.
"""
