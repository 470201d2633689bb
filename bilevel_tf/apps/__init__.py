"""Experiment logic shared by the runners of one application (importance learning, few-shot, poisoning).

Each runner script stays short and reads like its experiment; what several runners share lives here.
"""
