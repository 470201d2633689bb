"""What every experiment runner shares, TensorFlow-free until a run starts: the flags and their argparse types
(:mod:`.experiment`, :mod:`.flag_types`), what each recorded flag means for a run's identity
(:mod:`.flag_roles`), the output folder of one run (:mod:`.run_folder`), what a run prints (:mod:`.console`),
TensorFlow's quiet start-up (:mod:`.quiet_tensorflow`), figures (:mod:`.plots`), TensorBoard logs
(:mod:`.tensorboard_logs`) and timing (:mod:`.timing`).

Importing the package imports none of its modules.
"""
