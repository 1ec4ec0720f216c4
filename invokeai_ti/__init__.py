"""Textual Inversion training for Stable Diffusion, with InvokeAI's habits."""

__version__ = "0.1.0"
