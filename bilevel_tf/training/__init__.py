"""The training loop ``bl.fit`` (:mod:`.loop`) and what it runs with: where its batches come from
(:mod:`.sources`), several upper iterations in one compiled call (:mod:`.execution`), its callbacks
(:mod:`.callbacks`), checkpoint and resume as a callback (:mod:`.backup`) over the run state it saves
(:mod:`.checkpoints`), the folder lock and rules that keep a run folder honest (:mod:`.folders`,
TensorFlow-free), its progress and status lines (:mod:`.terminal`, TensorFlow-free), multi-worker rules
(:mod:`.workers`) and files written atomically (:mod:`.files`).

Importing the package imports none of its modules.
"""
