"""The training data: the user's folder of pictures and what becomes of each one.

Decoding (``images``), the prompt templates (``templates``), captions, masks, aspect-ratio
buckets, and the folder as the trainer sees it (``folder``: ``TrainingData``, ``data_changes``).
Nothing here knows of models or training; the trainer, the report and the form read it.
"""
