"""Everything a training run writes: embedding files in every consumer's layout, checkpoints and the
resume rules, the report, the output-folder lock and the full-pipeline export."""
