"""Users' photos as they are: captions, any aspect ratio, masks, and min-SNR and noise offset.

The data folder's conventions are those users bring from kohya, OneTrainer and the Hugging Face
image folder; each test names one of them and fails when it stops holding.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invokeai_ti.cli import main
from invokeai_ti.data.buckets import Bucket, bucket_for, buckets_for, fit, step_with_buckets
from invokeai_ti.data.captions import caption_sources, captions_for, varied
from invokeai_ti.data.folder import read_training_data
from invokeai_ti.data.images import image_geometry, scan_images
from invokeai_ti.errors import UserError
from invokeai_ti.training.plan import SamplePlan, timestep_range
from invokeai_ti.training.step import min_snr_weights, weighted_mse

TRIGGER = "psychedelic"


def photo(path: Path, width: int, height: int, seed: int = 0, mode: str = "RGB") -> Path:
    """A busy random picture, so every pixel differs from its neighbours."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    if mode == "RGBA":
        pixels[..., 3] = 255
    Image.fromarray(pixels, mode).save(path)
    return path


def data(folder: Path, **overrides) -> object:
    options = dict(trigger=TRIGGER, resolution=64, bucket=True, bucket_step=16, masked_loss=True)
    return read_training_data(folder, **(options | overrides))


def command(root: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", f"--placeholder_token={TRIGGER}",
        "--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=2",
        "--mixed_precision=no", "--seed=5", "--learning_rate=0.002", "--no-scale_lr",
        "--bucket_reso_steps=16", *extra,
    ]


def data_dir(root: Path) -> Path:
    return root / "text-inversion-training-data" / TRIGGER


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / TRIGGER


# Captions -----------------------------------------------------------------------------------


def test_captions_come_from_a_txt_beside_the_photo_or_from_metadata_jsonl(tmp_path):
    for name in ("a", "b", "c"):
        photo(tmp_path / f"{name}.png", 64, 64)
    (tmp_path / "a.txt").write_text("a <psychedelic> poster\n", encoding="utf-8")
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "text": "loses to the txt"}) + "\n"
        + json.dumps({"file_name": "b.png", "text": "[name] on a wall"}) + "\n",
        encoding="utf-8",
    )
    scan = scan_images(tmp_path)
    assert scan.skipped == [], "captions and metadata.jsonl are part of the data, not skipped files"
    sources = caption_sources(tmp_path, scan.images)
    assert captions_for(scan.images, sources, TRIGGER, "<psychedelic>") == [
        "a <psychedelic> poster", "<psychedelic> on a wall", None,
    ]


@pytest.mark.parametrize(
    "written", ["a <psychedelic> poster", "a psychedelic poster", "a {} poster", "a [name] poster",
                "a Psychedelic poster"],
)
def test_every_way_of_writing_the_trigger_becomes_the_trained_tokens(tmp_path, written):
    photo(tmp_path / "a.png", 64, 64)
    (tmp_path / "a.txt").write_text(written, encoding="utf-8")
    images = scan_images(tmp_path).images
    assert captions_for(images, caption_sources(tmp_path, images), TRIGGER, "<psychedelic> <psychedelic>_1") == [
        "a <psychedelic> <psychedelic>_1 poster"
    ]


def test_a_caption_that_never_names_the_trigger_is_refused_in_one_sentence_naming_the_files(make_root, capsys):
    root = make_root(images=3)
    folder = data_dir(root)
    first, second, _ = sorted(folder.glob("*.jpg"))
    first.with_suffix(".txt").write_text("a poster on a wall", encoding="utf-8")
    second.with_suffix(".txt").write_text("psychedelics, a poster", encoding="utf-8")
    assert main(command(root, "--max_train_steps=1")) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.count(". ") == 0, err
    assert first.with_suffix(".txt").name in err and second.with_suffix(".txt").name in err
    assert "<psychedelic>" in err and "{}" in err and "[name]" in err
    assert not (output_of(root) / "learned_embeds.bin").exists()


def test_a_caption_files_text_is_what_the_text_encoder_sees(make_root, monkeypatch):
    """The trainer's text encoder gets exactly the caption's tokens, trigger in place."""
    from invokeai_ti.training import trainer as trainer_module

    root = make_root(images=1)
    (only,) = data_dir(root).glob("*.jpg")
    only.with_suffix(".txt").write_text("a psychedelic poster, glowing", encoding="utf-8")
    seen: list[torch.Tensor] = []
    original = trainer_module.TrainingStep.loss

    def watching(self, numbers, **options):
        """Training's samples and the fixed evaluation batch's alike."""
        encoder = self.model.text.encoders[0]
        handle = encoder.register_forward_pre_hook(lambda _module, args: seen.append(args[0].clone()))
        try:
            return original(self, numbers, **options)
        finally:
            handle.remove()

    monkeypatch.setattr(trainer_module.TrainingStep, "loss", watching)
    assert main(command(root, "--max_train_steps=1", "--validation_prompt=none")) == 0
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(root / "models" / "diffusers" / "stable-diffusion-1.5" / "tokenizer"))
    tokenizer.add_tokens(["<psychedelic>"])
    expected = tokenizer("a <psychedelic> poster, glowing", padding="max_length",
                         max_length=tokenizer.model_max_length, return_tensors="pt").input_ids[0]
    assert seen and all(torch.equal(ids, expected) for batch in seen for ids in batch)


def test_shuffle_keeps_the_first_tags_in_front_and_dropout_never_drops_the_trigger():
    caption = "<p>, red, blue, green, round, tall, small"
    orders = set()
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        text = varied(caption, "<p>", shuffle=True, keep=1, dropout=0.5, generator=generator)
        tags = text.split(", ")
        assert tags[0] == "<p>"
        assert set(tags) <= set(caption.split(", ")) and len(tags) == len(set(tags))
        orders.add(text)
    assert len(orders) > 10, "tags are shuffled and dropped differently per sample"
    never = varied("red, <p> poster, blue", "<p>", shuffle=False, keep=0, dropout=0.99,
                   generator=torch.Generator().manual_seed(0))
    assert never == "<p> poster", "the trigger's tag stays; without shuffle the order stays"


# Buckets ------------------------------------------------------------------------------------


def test_buckets_hold_about_the_resolutions_pixels_in_steps_and_keep_a_square_square():
    buckets = buckets_for(1024, 64)
    assert Bucket(1024, 1024) in buckets and Bucket(832, 1216) in buckets
    assert all(b.width % 64 == 0 and b.height % 64 == 0 for b in buckets)
    assert all(0.8 * 1024**2 <= b.width * b.height <= 1024**2 for b in buckets)
    portrait = bucket_for(832, 1216, buckets)
    assert portrait == Bucket(832, 1216)
    assert fit(832, 1216, portrait).crop_left == 0 and fit(832, 1216, portrait).crop_top == 0
    assert bucket_for(3000, 3000, buckets) == Bucket(1024, 1024)


def test_sdxl_time_ids_carry_the_true_size_and_the_crop_into_the_bucket(tmp_path):
    """A 100x62 photo goes to the 80x48 bucket: scaled to 80x50, a row is cut at the top."""
    path = photo(tmp_path / "wide.png", 100, 62)
    cut = fit(100, 62, bucket_for(100, 62, buckets_for(64, 16)))
    assert cut.bucket == Bucket(80, 48)
    shape = image_geometry(path, 64, False, cut)
    assert (shape.height, shape.width, shape.target_height, shape.target_width) == (62, 100, 48, 80)
    assert (shape.crop_top, shape.crop_left) == (cut.crop_top, cut.crop_left) == (1, 0)


def test_every_step_draws_from_one_bucket_and_every_image_once_a_cycle():
    buckets = [0, 0, 0, 1, 1, 2, 0]
    plan = SamplePlan(5, len(buckets), 3, 1000, buckets=buckets, samples_per_step=2)
    steps = [[plan.image_for(step * 2 + i) for i in range(2)] for step in range(30)]
    assert all(len({buckets[image] for image in step}) == 1 for step in steps)
    cycle = sum(-(-buckets.count(b) // 2) for b in set(buckets))
    assert {image for step in steps[:cycle] for image in step} == set(range(len(buckets)))
    again = SamplePlan(5, len(buckets), 3, 1000, buckets=buckets, samples_per_step=2)
    assert [again.image_for(n) for n in range(59, -1, -1)] == [i for s in steps for i in s][::-1], (
        "a resumed run recomputes any sample's image from the seed alone"
    )


def test_one_bucket_is_the_unbucketed_plan_exactly():
    plain = SamplePlan(5, 4, 3, 1000)
    one = SamplePlan(5, 4, 3, 1000, buckets=[0, 0, 0, 0], samples_per_step=3)
    assert [plain.image_for(n) for n in range(20)] == [one.image_for(n) for n in range(20)]


def test_square_photos_train_exactly_as_without_buckets(make_root, tmp_path):
    from safetensors.torch import load_file

    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--validation_prompt=none")) == 0
    squared = tmp_path / "squared"
    assert main(command(root, "--max_train_steps=2", "--validation_prompt=none", "--no-bucket",
                        f"--output_dir={squared}")) == 0
    key = "<psychedelic>"
    assert torch.equal(load_file(str(output_of(root) / "learned_embeds.safetensors"))[key],
                       load_file(str(squared / "learned_embeds.safetensors"))[key])


def mixed_shapes(root: Path) -> None:
    folder = data_dir(root)
    shutil.rmtree(folder)
    folder.mkdir()
    for index, (width, height) in enumerate([(64, 64), (96, 48), (100, 52), (48, 96), (50, 100), (64, 64)]):
        photo(folder / f"photo{index}.png", width, height, seed=index)


def test_a_bucket_step_too_coarse_for_the_resolution_becomes_the_largest_one_the_model_takes():
    """64 at 32 or 64 px leaves only the square; the step must stay a multiple of the model's
    latent downsampling (16 for the world and tiny models, 64 for SD-1.5)."""
    assert step_with_buckets(1024, 64, 32) == 64 and step_with_buckets(512, 64, 64) == 64
    assert step_with_buckets(32, 64, 16) == 16
    assert step_with_buckets(64, 64, 16) == 32
    assert step_with_buckets(64, 64, 64) is None, "SD-1.5 at 64 px has no step with buckets"
    assert len(buckets_for(32, 64)) == 1 and len(buckets_for(32, 16)) > 1


def bucket_photos(root: Path) -> None:
    """The reported shapes: 3:2, 1:2, 16:9 and 1:1."""
    folder = data_dir(root)
    shutil.rmtree(folder)
    folder.mkdir()
    for index, (width, height) in enumerate([(96, 64), (50, 100), (160, 90), (80, 80)]):
        photo(folder / f"photo{index}.png", width, height, seed=index)


def report_photo_sizes(output: Path) -> dict[str, tuple[int, int]]:
    """Each training photo's thumbnail in the report, by name: the picture as it trained."""
    import base64
    import io
    import re

    page = (output / "report.html").read_text()
    found = {}
    for name, data in re.findall(r'alt="training photo ([^"]+)" title="[^"]*" src="data:image/jpeg;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            found[name] = image.size
    return found


def test_a_coarse_bucket_step_is_refined_said_in_one_line_and_the_report_shows_the_crops(make_root, capsys):
    root = make_root()
    bucket_photos(root)
    flags = [a for a in command(root, "--max_train_steps=1", "--validation_prompt=none", "--checkpointing_steps=1")
             if not a.startswith("--bucket_reso_steps")]
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert ("Buckets: a step of 64 px leaves only the 64x64 bucket at 64 px, so pictures train with a step "
            "of 32 px, the largest that keeps their shapes (--bucket_reso_steps sets it).") in out
    assert "Training data: 3 aspect-ratio buckets (32x96, 64x64, 96x32)." in out
    record = json.loads((output_of(root) / "training_settings.json").read_text())
    assert (record["bucket_reso_steps"], record["bucket_step_used"]) == (64, 32)
    shapes = {name: value["bucket"] for name, value in json.loads(
        (output_of(root) / "checkpoint-1" / "trainer_state.json").read_text())["data"].items()}
    assert shapes == {"photo0.png": "64x64", "photo1.png": "32x96", "photo2.png": "96x32", "photo3.png": "64x64"}
    sizes = report_photo_sizes(output_of(root))
    for name, bucket in shapes.items():
        width, height = map(int, bucket.split("x"))
        assert sizes[name][0] * height == sizes[name][1] * width, f"{name} is shown cut to {bucket}"
    capsys.readouterr()
    assert main([*flags, "--max_train_steps=2", "--resume_from_checkpoint=latest"]) == 0, (
        "the same flags make the same choice, so the run resumes")


def test_a_model_too_coarse_for_any_bucket_says_in_one_line_that_pictures_train_square(make_root, capsys):
    root = make_root()
    bucket_photos(root)
    flags = [a for a in command(root, "--max_train_steps=1", "--validation_prompt=none", "--resolution=16")
             if not a.startswith(("--bucket_reso_steps", "--resolution=64"))]
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert ("Every picture trains square at 16 px: stable-diffusion-1.5 takes sides in steps of 16 px, too "
            "coarse for buckets at this size (train at a higher --resolution to keep the pictures' shapes).") in out
    assert set(report_photo_sizes(output_of(root)).values()) == {(16, 16)}, "the 16-pixel squares trained"


def test_a_bucketed_shuffled_run_resumed_equals_the_straight_run_bit_for_bit(make_root, tmp_path, capsys):
    from safetensors.torch import load_file

    root = make_root()
    mixed_shapes(root)
    for name in ("photo1", "photo3"):
        (data_dir(root) / f"{name}.txt").write_text("psychedelic, red, round, small, bright", encoding="utf-8")
    tags = ("--shuffle_caption", "--keep_tokens=1", "--caption_tag_dropout_rate=0.3")
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1", *tags)) == 0
    assert "2 captions; 3 aspect-ratio buckets" in capsys.readouterr().out
    assert main(command(root, "--max_train_steps=4", "--resume_from_checkpoint=latest", *tags)) == 0
    straight = tmp_path / "straight"
    assert main(command(root, "--max_train_steps=4", f"--output_dir={straight}", *tags)) == 0
    key = "<psychedelic>"
    assert torch.equal(load_file(str(output_of(root) / "learned_embeds.safetensors"))[key],
                       load_file(str(straight / "learned_embeds.safetensors"))[key])


@pytest.mark.slow
def test_a_bucketed_two_process_run_equals_a_one_process_run(make_root, tmp_path):
    from safetensors.torch import load_file

    from tests.test_distributed import invokeai_ti_command, launch_two, run_one

    if invokeai_ti_command() is None:
        pytest.skip("the invokeai-ti console script is not installed")
    root = make_root()
    mixed_shapes(root)

    def flags(output: Path, batch: int) -> list[str]:
        return [*command(root, "--max_train_steps=3", "--validation_prompt=none"),
                f"--output_dir={output}", f"--train_batch_size={batch}"]

    two = launch_two(root, *flags(tmp_path / "two", 1))
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_one(*flags(tmp_path / "one", 2))
    assert one.returncode == 0, one.stderr[-3000:]
    key = "<psychedelic>"
    one_vectors = load_file(str(tmp_path / "one" / "learned_embeds.safetensors"))[key]
    two_vectors = load_file(str(tmp_path / "two" / "learned_embeds.safetensors"))[key]
    assert torch.allclose(one_vectors, two_vectors, atol=1e-6, rtol=0)


# Masks --------------------------------------------------------------------------------------


def test_a_mask_beside_the_photo_wins_over_alpha_and_is_not_a_training_image(tmp_path):
    photo(tmp_path / "a.png", 64, 64, mode="RGBA")
    Image.new("L", (64, 64), 255).save(tmp_path / "a.mask.png")
    photo(tmp_path / "b.png", 64, 64, mode="RGBA")
    found = data(tmp_path)
    assert [image.path.name for image in found.images] == ["a.png", "b.png"]
    assert found.images[0].mask == tmp_path / "a.mask.png" and found.images[1].mask == "alpha"


@pytest.mark.parametrize("problem", ["empty", "wrong size", "transparent"])
def test_an_empty_or_wrong_size_mask_is_one_sentence_naming_the_file(tmp_path, problem):
    if problem == "transparent":
        Image.new("RGBA", (64, 64), (9, 9, 9, 0)).save(tmp_path / "a.png")
    else:
        photo(tmp_path / "a.png", 64, 64)
        size = (64, 64) if problem == "empty" else (32, 64)
        Image.new("L", size, 0 if problem == "empty" else 255).save(tmp_path / "a.mask.png")
    with pytest.raises(UserError) as refused:
        data(tmp_path)
    message = str(refused.value)
    assert "a.png" in message and message.count(". ") == 0 and "\n" not in message
    if problem != "transparent":
        assert "a.mask.png" in message


def test_a_masked_pixel_gets_no_gradient(make_root, monkeypatch):
    """The left half of the photo is masked out: the loss's gradient on the UNet's prediction is
    zero on every latent pixel there, and not zero on the right half."""
    from invokeai_ti.training import trainer as trainer_module

    root = make_root(images=1)
    (only,) = data_dir(root).glob("*.jpg")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask, "L").save(only.with_name(only.stem + ".mask.png"))
    gradients: list[tuple[torch.Tensor, list[int]]] = []
    original = trainer_module.TrainingStep.loss

    def watching(self, numbers, **options):
        if options.get("samples") is not None:  # the fixed evaluation batch, scored without gradients
            return original(self, numbers, **options)

        def keep(_module, _args, output):
            output.sample.register_hook(lambda grad: gradients.append(grad.clone()))

        handle = self.unet.register_forward_hook(keep)
        try:
            return original(self, numbers, **options)
        finally:
            handle.remove()

    monkeypatch.setattr(trainer_module.TrainingStep, "loss", watching)
    assert main(command(root, "--max_train_steps=1", "--validation_prompt=none",
                        "--gradient_accumulation_steps=4")) == 0
    assert len(gradients) == 4
    for grad in gradients:
        # The mirror image flips the mask: a sample's masked half is one of the two halves.
        left, right = grad[..., :4].abs().sum(), grad[..., 4:].abs().sum()
        assert (left == 0) != (right == 0), "exactly the masked half gets no gradient"


def test_the_weighted_loss_ignores_masked_pixels_and_weights_samples():
    prediction = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randn(2, 4, 8, 8)
    assert torch.equal(weighted_mse(prediction, target), torch.nn.functional.mse_loss(prediction, target))
    masks = torch.ones(2, 1, 8, 8)
    masks[:, :, :, :3] = 0
    weighted_mse(prediction, target, masks=masks).backward()
    assert prediction.grad[..., :3].abs().sum() == 0 and prediction.grad[..., 3:].abs().min() > 0
    changed = target.clone()
    changed[..., :3] += 100
    assert weighted_mse(prediction, changed, masks=masks) == weighted_mse(prediction, target, masks=masks)


# Loss weighting -----------------------------------------------------------------------------


def test_min_snr_caps_the_weight_of_easy_timesteps_for_epsilon_and_v_prediction():
    alphas = torch.linspace(0.9999, 0.01, 1000)
    timesteps = torch.tensor([0, 500, 999])
    snr = alphas[timesteps] / (1 - alphas[timesteps])
    epsilon = min_snr_weights(alphas, timesteps, 5.0, v_prediction=False)
    velocity = min_snr_weights(alphas, timesteps, 5.0, v_prediction=True)
    assert torch.allclose(epsilon, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert torch.allclose(velocity, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert epsilon[0] < 0.01 and epsilon[2] == 1.0, "an easy timestep weighs little, a hard one fully"


def test_noise_offset_shifts_each_channel_of_the_noise_by_one_amount():
    from invokeai_ti.training.latents import LatentCache

    cache = LatentCache([torch.zeros(2, 4, 8, 8)], [torch.ones(2, 4, 8, 8)])
    plain = SamplePlan(5, 1, 1, 1000).draw(3, cache)
    offset = SamplePlan(5, 1, 1, 1000, noise_offset=0.1).draw(3, cache)
    shift = offset.noise - plain.noise
    assert torch.equal(offset.latent, plain.latent) and offset.timestep == plain.timestep
    assert shift.abs().sum() > 0
    assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift))


def test_a_timestep_range_draws_only_its_timesteps_and_the_full_range_draws_as_before():
    from invokeai_ti.training.latents import LatentCache

    cache = LatentCache([torch.zeros(2, 4, 8, 8)], [torch.ones(2, 4, 8, 8)])
    plain, full, high = SamplePlan(5, 1, 1, 1000), SamplePlan(5, 1, 1, 1000, timesteps=(0, 1000)), \
        SamplePlan(5, 1, 1, 1000, timesteps=(250, 1000))
    drawn = [high.draw(n, cache).timestep for n in range(400)]
    assert min(drawn) >= 250 and max(drawn) <= 999
    assert min(drawn) < 260 and max(drawn) > 990, "the whole range is drawn from"
    assert [plain.draw(n, cache).timestep for n in range(50)] == [full.draw(n, cache).timestep for n in range(50)]


def test_a_lowest_timestep_beyond_the_model_is_one_sentence_and_a_high_one_means_the_noisiest():
    assert timestep_range(250, 1000, 1000) == (250, 1000)
    assert timestep_range(0, 1000, 500) == (0, 500)
    with pytest.raises(UserError, match="--min_timestep 600 is beyond this model's 500 timesteps"):
        timestep_range(600, 1000, 500)


def test_the_timestep_range_trains_is_recorded_and_a_resume_with_another_is_refused(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=1", "--min_timestep=300", "--validation_prompt=none")) == 0
    record = json.loads((output_of(root) / "training_settings.json").read_text())
    assert record["min_timestep"] == 300 and record["max_timestep"] == 1000
    assert record["timesteps_trained"] == "300-999", "the range drawn from, first and last included"
    page = (output_of(root) / "report.html").read_text()
    assert "<td>Timesteps trained</td><td>300-999 (<code>--min_timestep 300</code>" in page
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest", "--min_timestep=0")) != 0
    err = capsys.readouterr().err
    assert "lowest timestep 300 (checkpoint) vs 0 (now)" in err and "--min_timestep=300" in err


def test_min_snr_and_noise_offset_train_and_are_recorded(make_root):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--snr_gamma=5", "--noise_offset=0.05",
                        "--validation_prompt=none")) == 0
    record = json.loads((output_of(root) / "training_settings.json").read_text())
    assert record["snr_gamma"] == 5.0 and record["noise_offset"] == 0.05
    assert record["min_timestep"] == 0, "the record says which timesteps an object trained on by default"
    assert record["timesteps_trained"] == "0-999"
    assert record["bucket"] is True and record["shuffle_caption"] is False


# The data a run trains on -------------------------------------------------------------------


def test_a_resume_over_changed_data_is_refused_in_one_sentence_naming_the_change(make_root, capsys):
    root = make_root(images=3)
    assert main(command(root, "--max_train_steps=1")) == 0
    folder = data_dir(root)
    first, second, _ = sorted(folder.glob("*.jpg"))
    first.with_suffix(".txt").write_text("a psychedelic poster", encoding="utf-8")
    second.unlink()
    photo(folder / "new.png", 64, 64)
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest")) != 0
    err = capsys.readouterr().err.strip()
    # Above it, only the latent cache's progress bar.
    assert "Traceback" not in err and err.splitlines()[-1].startswith("The data folder changed"), err
    err = err.splitlines()[-1]
    assert "added new.png" in err and f"removed {second.name}" in err and f"changed captions of {first.name}" in err


def test_a_resume_with_other_loss_settings_is_refused_with_the_checkpoints_flags(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=1", "--snr_gamma=5")) == 0
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest", "--no-bucket")) != 0
    err = capsys.readouterr().err
    assert "min-SNR gamma 5.0 (checkpoint) vs 0.0 (now)" in err and "--snr_gamma=5.0" in err
    assert "aspect-ratio buckets on (checkpoint) vs off (now)" in err and "--bucket" in err


def test_a_bucket_step_the_unet_cannot_take_is_one_sentence_before_training(make_root, capsys):
    root = make_root()
    mixed_shapes(root)
    assert main([*command(root, "--max_train_steps=1"), "--bucket_reso_steps=8"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bucket_reso_steps 16" in err, err


def test_sdxls_unet_is_told_each_bucketed_photos_true_size_and_crop(tmp_path, tiny_sdxl_model, monkeypatch):
    """A 100x62 photo trains at 80x48 (scaled to 80x50, a row cut at the top); the UNet gets
    (62, 100, 1, 0, 48, 80) as time ids with a latent of that bucket's shape."""
    from conftest import build_root

    from invokeai_ti.training import trainer as trainer_module

    root = build_root(tmp_path / "invokeai", tiny_sdxl_model, "sdxl-tiny")
    folder = data_dir(root)
    shutil.rmtree(folder)
    folder.mkdir()
    photo(folder / "wide.png", 100, 62)
    seen: list[tuple[list, tuple]] = []
    original = trainer_module.TrainingStep.loss

    def watching(self, numbers, **options):
        """Training's samples and the fixed evaluation batch's alike."""
        def keep(_module, args, kwargs):
            seen.append((kwargs["added_cond_kwargs"]["time_ids"].tolist(), tuple(args[0].shape[-2:])))

        unet = self.unet if options.get("samples") is None else self.eager_unet
        handle = unet.register_forward_pre_hook(keep, with_kwargs=True)
        try:
            return original(self, numbers, **options)
        finally:
            handle.remove()

    monkeypatch.setattr(trainer_module.TrainingStep, "loss", watching)
    assert main([*command(root, "--max_train_steps=1", "--validation_prompt=none"), "--model=sdxl-tiny"]) == 0
    assert seen and all(shape == (6, 10) for _, shape in seen)
    rows = {tuple(row) for ids, _ in seen for row in ids}
    assert rows <= {(62.0, 100.0, 1.0, 0.0, 48.0, 80.0)}, rows
