"""Real training on a tiny random SD pipeline: what a run produces, installs and guarantees."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.settings import TrainingSettings
from invokeai_ti.training import LatentCache, Trainer
from invokeai_ti.workflow import plan_run

FAST = ["--resolution=64", "--train_batch_size=2", "--gradient_accumulation_steps=1", "--mixed_precision=no"]


def typical_command(root: Path, *extra: str) -> list[str]:
    """InvokeAI's documented command, with a tiny model registered as stable-diffusion-1.5."""
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--learnable_property=style",
        "--initializer_token=*", "--placeholder_token=<psychedelic>", "--scale_lr",
        "--max_train_steps=4", "--learning_rate=0.0005", "--lr_scheduler=constant",
        "--only_save_embeds", "--seed=7", *FAST, *extra,
    ]


def test_typical_invokeai_command_trains_and_installs_a_loadable_embedding(make_root, capsys):
    root = make_root("stable-diffusion-1.5")
    assert main(typical_command(root)) == 0
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    assert "<psychedelic>" in capsys.readouterr().out

    data = torch.load(installed, weights_only=True)
    assert list(data) == ["<psychedelic>"] and data["<psychedelic>"].shape == (32,)
    output = root / "text-inversion-output" / "psychedelic"
    assert torch.equal(load_file(str(output / "learned_embeds.safetensors"))["<psychedelic>"][0], data["<psychedelic>"])

    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(root / "models" / "diffusers" / "stable-diffusion-1.5"))
    pipe.load_textual_inversion(str(installed))
    token_id = pipe.tokenizer.convert_tokens_to_ids("<psychedelic>")
    assert pipe.tokenizer.tokenize("a <psychedelic> painting")[1] == "<psychedelic>"
    assert torch.allclose(pipe.text_encoder.get_input_embeddings().weight[token_id], data["<psychedelic>"])


def test_output_folder_holds_settings_seed_and_per_step_loss_log(make_root):
    root = make_root()
    argv = [a for a in typical_command(root) if not a.startswith("--seed")]
    assert main(argv + ["--save_steps=2", "--checkpointing_steps=1", "--checkpoints_total_limit=2"]) == 0
    output = root / "text-inversion-output" / "psychedelic"
    record = json.loads((output / "training_settings.json").read_text())
    assert isinstance(record["seed"], int) and record["placeholder_token"] == "<psychedelic>"
    with open(output / "loss_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss"]) > 0 for r in rows)
    for name in ("learned_embeds-steps-2.safetensors", "learned_embeds-steps-2.bin", "psychedelic-steps-2.safetensors"):
        assert (output / name).exists()
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert not list(output.glob(".training.*")), "a finished run leaves no lock file behind"


def train(root: Path, **changes) -> tuple[Trainer, torch.Tensor]:
    values = dict(
        root=root, model="stable-diffusion-1.5", placeholder_token="psychedelic", max_train_steps=3,
        train_batch_size=2, gradient_accumulation_steps=1, seed=3, mixed_precision="no",
        deterministic=torch.cuda.is_available(),
    )
    settings = TrainingSettings(**(values | changes))
    plan = plan_run(settings)
    trainer = Trainer(plan.settings, plan.model, plan.data_dir, plan.output_dir, show_progress=False)
    result = trainer.run()
    (vectors,) = result.vectors
    return trainer, vectors


def test_original_embedding_rows_are_bit_identical_after_training(make_root, tiny_model):
    from transformers import CLIPTextModel

    trainer, vectors = train(make_root(), learning_rate=0.05)
    before = CLIPTextModel.from_pretrained(str(tiny_model / "text_encoder")).get_input_embeddings().weight
    [text_encoder], [tokenizer] = trainer.text.encoders, trainer.text.tokenizers
    after = text_encoder.get_input_embeddings().original.weight.cpu()
    assert torch.equal(before, after)
    star = before[tokenizer.convert_tokens_to_ids("*</w>")]
    assert not torch.allclose(vectors[0], star), "the new vector should have moved from its initializer"
    assert [p for p in text_encoder.parameters() if p.requires_grad] == list(trainer.text.vectors)


def test_same_seed_gives_the_same_embedding_and_another_seed_does_not(make_root):
    root = make_root()
    _, first = train(root)
    _, again = train(root)
    _, other = train(root, seed=4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_image_decoding_threads_do_not_change_the_result(make_root):
    root = make_root()
    _, sequential = train(root)
    _, threaded = train(root, dataloader_num_workers=2)
    assert torch.equal(sequential, threaded)


def test_cached_latent_distribution_samples_like_encoding_every_step(make_root):
    """Sampling the cached distribution is the same maths as re-encoding the same pixels."""
    from diffusers import AutoencoderKL

    from invokeai_ti.data.images import image_to_tensor, load_image, scan_images

    root = make_root()
    trainer, _ = train(root)
    cache: LatentCache = trainer.cache
    vae = AutoencoderKL.from_pretrained(str(root / "models" / "diffusers" / "stable-diffusion-1.5" / "vae"))
    first = scan_images(root / "text-inversion-training-data" / "psychedelic").images[0]
    pixels = image_to_tensor(load_image(first, 64, False)).unsqueeze(0)
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    encoded = dist.sample(generator=torch.Generator().manual_seed(11)) * vae.config.scaling_factor
    cached = cache.sample(0, 0, torch.Generator().manual_seed(11))
    assert torch.allclose(encoded[0], cached, atol=1e-5)


def test_several_vectors_are_installed_in_the_a1111_layout_diffusers_expands(make_root):
    root = make_root()
    assert main(typical_command(root, "--num_vectors=3")) == 0
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    data = torch.load(installed, weights_only=True)
    assert data["name"] == "<psychedelic>" and data["string_to_param"]["*"].shape == (3, 32)

    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(root / "models" / "diffusers" / "stable-diffusion-1.5"))
    pipe.load_textual_inversion(str(installed))
    assert "<psychedelic>_2" in pipe.tokenizer.get_vocab()


def add_token_to_model(model: Path, token: str) -> None:
    """Make the model ship with ``token`` already, as a pipeline with a merged embedding does."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(model / "tokenizer"))
    tokenizer.add_tokens([token])
    tokenizer.save_pretrained(str(model / "tokenizer"))
    encoder = CLIPTextModel.from_pretrained(str(model / "text_encoder"))
    encoder.resize_token_embeddings(len(tokenizer))
    encoder.save_pretrained(str(model / "text_encoder"))


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--placeholder_token=<merged>"], "The trigger <merged> is already a token"),
        (["--initializer_token=psychedelic art"], "is not a single token: the tokenizer makes 12 of it"),
    ],
)
def test_token_problems_are_refused_before_training(make_root, capsys, flags, fragment):
    root = make_root()
    add_token_to_model(root / "models" / "diffusers" / "stable-diffusion-1.5", "<merged>")
    argv = [a for a in typical_command(root) if not a.startswith("--placeholder_token")] + flags
    if not any(a.startswith("--placeholder_token") for a in flags):
        argv.append("--placeholder_token=psychedelic")
    argv.append(f"--train_data_dir={root / 'text-inversion-training-data' / 'psychedelic'}")
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
    assert not (root / "embeddings").exists()


def test_resume_latest_continues_exactly_where_the_run_stopped(make_root):
    root = make_root()
    _, straight = train(root, max_train_steps=4)
    train(root, max_train_steps=2, checkpointing_steps=1)
    _, resumed = train(root, max_train_steps=4, resume_from_checkpoint="latest")
    assert torch.equal(straight, resumed)
