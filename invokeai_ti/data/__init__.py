"""The training data: the user's folder of pictures and what becomes of each one.

Which pictures count and the shape each is trained at (``images``), decoding them safely
(``decoding``), the prompt templates (``templates``), captions, masks, aspect-ratio
buckets, and the folder as the trainer sees it (``folder``: ``TrainingData``, ``data_changes``).
Nothing here knows of models or training; the trainer, the report and the form read it.
"""
