"""The tiny SDXL pipeline is SDXL-shaped for real: diffusers' own SDXL pipeline loads and runs it."""

from __future__ import annotations

import torch

from invokeai_ti.quiet import quiet_imports, quiet_library_progress
from tools.pipelines import SDXL_TIME_IDS


def load_sdxl(folder):
    with quiet_imports():
        from diffusers import StableDiffusionXLPipeline
    with quiet_library_progress():
        return StableDiffusionXLPipeline.from_pretrained(str(folder))


def test_diffusers_sdxl_pipeline_loads_it_and_generates_at_64_pixels_on_the_cpu(tiny_sdxl_model):
    pipe = load_sdxl(tiny_sdxl_model)
    pipe.set_progress_bar_config(disable=True)
    result = pipe(
        "a photo of a cat", num_inference_steps=2, height=64, width=64, output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert result.images.shape == (1, 4, 8, 8)
    assert torch.isfinite(result.images).all()


def test_its_two_text_encoders_differ_in_width_and_feed_the_unet_as_sdxl_does(tiny_sdxl_model):
    pipe = load_sdxl(tiny_sdxl_model)
    width_l = pipe.text_encoder.get_input_embeddings().embedding_dim
    width_g = pipe.text_encoder_2.get_input_embeddings().embedding_dim
    assert (type(pipe.text_encoder).__name__, type(pipe.text_encoder_2).__name__) == (
        "CLIPTextModel", "CLIPTextModelWithProjection"
    )
    assert (width_l, width_g) == (32, 48)
    unet = pipe.unet.config
    assert unet.cross_attention_dim == width_l + width_g
    assert unet.addition_embed_type == "text_time"
    projection = pipe.text_encoder_2.config.projection_dim
    assert projection not in (width_l, width_g)
    assert unet.projection_class_embeddings_input_dim == projection + SDXL_TIME_IDS * unet.addition_time_embed_dim
    assert pipe.vae.config.scaling_factor == 0.13025


def test_its_tokenizers_share_a_vocabulary_but_pad_differently_as_sdxls_do(tiny_sdxl_model):
    pipe = load_sdxl(tiny_sdxl_model)
    assert pipe.tokenizer.get_vocab() == pipe.tokenizer_2.get_vocab()
    assert (pipe.tokenizer.pad_token, pipe.tokenizer_2.pad_token) == ("<|endoftext|>", "!")
