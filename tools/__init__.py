"""Development tools: what makes, measures and tests the package, kept out of what pip installs.

The random pipelines the tests and benchmarks train on, the world model's vocabulary writer,
pretraining and evaluation, and the sampler the learning checks draw through. Nothing in
``invokeai_ti`` imports from here; run these from a checkout (``python -m tools.pretrain``).
"""
