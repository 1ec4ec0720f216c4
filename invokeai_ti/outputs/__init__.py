"""Everything a training run writes: the output folder's layout (``layout``, its one owner), embedding
files in every consumer's layout and each model family's set of them, checkpoints, what defines a
run (``run_shape``) and the resume rules, the report, the output-folder lock and the full-pipeline export.

These are file formats, below ``training``: the trainer imports them to write what it computed, so
the data flows training -> outputs and nothing here imports ``training`` (``checkpoints`` reads the
run's state through the ``state_dict`` protocol, not the trainer's class).
"""
