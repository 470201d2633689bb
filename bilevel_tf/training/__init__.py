"""The training loop ``bl.fit`` (:mod:`.loop`) and what it runs with: where its batches come from
(:mod:`.sources`), its callbacks (:mod:`.callbacks`), the run state it checkpoints (:mod:`.checkpoints`), the
folder lock and rules that keep a run folder honest (:mod:`.folders`, TensorFlow-free), multi-worker rules
(:mod:`.workers`) and files written atomically (:mod:`.files`).

Importing the package imports none of its modules.
"""
