"""Preview images during training, the loss plot and report.html, on the tiny random model.

The tiny model makes noise, so these tests check where previews go, what they record, that they
follow the learned vectors and never change them, and that the report shows them in a real
browser; not what they look like.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.data.templates import default_prompt
from invokeai_ti.demo import draw_sample_photos
from invokeai_ti.outputs.family_files import StableDiffusionFiles
from invokeai_ti.outputs.layout import OutputLayout
from invokeai_ti.outputs.loss_log import LossRow, read_loss_log
from invokeai_ti.outputs.loss_plot import loss_svg, smoothed
from invokeai_ti.settings import TrainingSettings
from invokeai_ti.training import ExtendedEmbedding, Trainer
from invokeai_ti.training.family import StableDiffusionFamily
from invokeai_ti.training.loading import LoadedModel, TextEncoders
from invokeai_ti.training.previews import Previews, grid, grid_shape, preview_prompts
from invokeai_ti.training.run import Run
from invokeai_ti.workflow import plan_run

SVG = "{http://www.w3.org/2000/svg}"

FAST = ["--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=1", "--mixed_precision=no"]


def command(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        f"--train_data_dir={root / 'text-inversion-training-data' / 'psychedelic'}",
        f"--output_dir={output}", "--seed=7", "--learning_rate=0.05", "--no-scale_lr", *FAST, *extra,
    ]


def text_of(png: Path) -> dict[str, str]:
    with Image.open(png) as image:
        return dict(image.text)


def pixels(png: Path) -> bytes:
    with Image.open(png) as image:
        return image.convert("RGB").tobytes()


@pytest.fixture(scope="module")
def run_with_previews(tmp_path_factory, tiny_model):
    """One 5-step run with a preview every 2 steps, shared by the tests that only read its output."""
    root = tmp_path_factory.mktemp("previews") / "invokeai"
    shutil.copytree(tiny_model, root / "models" / "diffusers" / "stable-diffusion-1.5")
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "models.yaml").write_text(
        "stable-diffusion-1.5:\n  format: diffusers\n  path: models/diffusers/stable-diffusion-1.5\n"
    )
    draw_sample_photos(root / "text-inversion-training-data" / "psychedelic", count=3, size=64)
    output = root / "out"
    argv = command(root, output, "--max_train_steps=5", "--validation_steps=2", "--save_steps=2",
                   "--num_validation_images=2")
    return root, output, argv


@pytest.fixture(scope="module")
def trained(run_with_previews):
    import contextlib
    import io

    _root, output, argv = run_with_previews
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    return output, printed.getvalue()


def test_a_preview_before_training_every_n_steps_and_at_the_end_with_step_and_prompt_inside(trained):
    output, _ = trained
    assert sorted(p.name for p in (output / "samples").iterdir()) == [
        "step-000000.png", "step-000002.png", "step-000004.png", "step-000005.png"]
    expected = {
        0: ("", "no"),
        2: ("learned_embeds-steps-2.safetensors", "no"),
        4: ("learned_embeds-steps-4.safetensors", "no"),
        5: ("learned_embeds.safetensors", "yes"),
    }
    for step, (embedding, final) in expected.items():
        text = text_of(output / "samples" / f"step-{step:06d}.png")
        assert text["step"] == str(step)
        assert text["prompt"] == "a photo of a <psychedelic>\na photo of a <psychedelic> on the beach"
        assert (text["embedding"], text["final"], text["seed"]) == (embedding, final, "7")
        with Image.open(output / "samples" / f"step-{step:06d}.png") as grid:
            assert grid.size == (128, 128), "a row of two 64-pixel images for each of the two default prompts"
    record = json.loads((output / "training_settings.json").read_text())
    assert record["validation_seed"] == 7
    assert record["validation_prompt"] == ["a photo of a <psychedelic>", "a photo of a <psychedelic> on the beach"]
    assert record["validation_steps"] == 2, "the record says what the previews used, not null for 'the default'"


def test_previews_follow_the_learned_vectors_and_use_the_same_noise_each_time(trained, tiny_model, tmp_path):
    """Each preview is exactly what the vectors of the file it names draw from the run's seeded
    noise: redrawn here from that file alone, it comes out pixel for pixel the same."""
    output, _ = trained
    parts = tiny_parts(tiny_model, "<psychedelic>")
    vectors = parts[-1]
    previews = make_previews(tiny_model, tmp_path, parts, num_validation_images=2, validation_seed=7)
    for step in (2, 4, 5):
        preview = output / "samples" / f"step-{step:06d}.png"
        saved = load_file(str(output / text_of(preview)["embedding"]))["<psychedelic>"]
        with torch.no_grad():
            vectors.copy_(saved)
        assert pixels(previews.render(step)) == pixels(preview), step
    assert pixels(output / "samples" / "step-000000.png") != pixels(output / "samples" / "step-000005.png")


def test_the_terminal_says_where_each_preview_and_the_report_went(trained):
    output, printed = trained
    for step in (0, 2, 4, 5):
        assert f"Preview of step {step}: {output / 'samples' / f'step-{step:06d}.png'}" in printed
    assert f"Report with the loss and the previews: {output / 'report.html'}" in printed


def test_every_long_pause_is_announced_before_it_starts(trained):
    """Loading, caching and each preview say what is happening before the terminal goes quiet."""
    _, printed = trained
    lines = printed.splitlines()

    def first(prefix: str) -> int:
        return next(index for index, line in enumerate(lines) if line.startswith(prefix))

    order = [
        first("Training <psychedelic> on stable-diffusion-1.5 with the images in "),
        first("Loading the text encoder and VAE of stable-diffusion-1.5 from "),
        first("Caching the latents of 3 images"),
        first("Loading the UNet of stable-diffusion-1.5..."),
        first("Drawing the preview of step 0: 4 pictures of 25 denoising steps each..."),
        first("Preview of step 0: "),
        first("Drawing the preview of step 2: "),
        first("Drawing the preview of step 5 (the final one): 4 pictures"),
        first("Preview of step 5: "),
    ]
    assert order == sorted(order)


def test_loss_plot_is_drawn_from_the_loss_log(trained):
    output, _ = trained
    drawing = ElementTree.parse(output / "loss.svg").getroot()
    assert drawing.tag == f"{SVG}svg" and int(drawing.get("width")) > 400
    lines = drawing.findall(f".//{SVG}polyline")
    assert [len(line.get("points").split()) for line in lines] == [5, 5, 5], "loss, smoothed, learning rate"
    assert [row.step for row in read_loss_log(output / "loss_log.csv")] == [1, 2, 3, 4, 5]


def test_the_loss_plots_legend_sits_outside_the_curves():
    rows = [LossRow(step, 0.5 + (step % 7) / 10, 5e-3) for step in range(1, 200)]
    drawing = ElementTree.fromstring(loss_svg(rows))
    area = drawing.find(f".//{SVG}rect[@class='plot-area']")
    bottom = float(area.get("y")) + float(area.get("height"))
    legend = drawing.findall(f".//{SVG}g[@class='legend']/{SVG}text")
    assert [entry.text for entry in legend] == ["loss of each step", "smoothed", "learning rate"]
    assert all(float(entry.get("y")) > bottom + 20 for entry in legend), "the legend covers the plot"
    for line in drawing.findall(f".//{SVG}polyline"):
        ys = [float(point.split(",")[1]) for point in line.get("points").split()]
        assert float(area.get("y")) <= min(ys) and max(ys) <= bottom, "every curve is drawn inside its axes"


def test_smoothing_keeps_the_first_steps_at_their_level_and_evens_out_noise():
    assert smoothed([2.0]) == [2.0]
    noisy = [1.0, 3.0] * 50
    curve = smoothed(noisy)
    assert curve[0] == 1.0
    assert max(curve[50:]) - min(curve[50:]) < 0.5 < max(noisy) - min(noisy)


def test_the_report_shows_a_row_of_pictures_for_each_preview_prompt(trained):
    output, _ = trained
    page = (output / "report.html").read_text()
    assert ("A row of pictures for each prompt: <q>a photo of a &lt;psychedelic&gt;</q>, "
            "<q>a photo of a &lt;psychedelic&gt; on the beach</q>") in page


def test_report_names_the_trigger_model_snapshots_and_embeds_every_image(trained):
    output, _ = trained
    page = (output / "report.html").read_text()
    assert "&lt;psychedelic&gt;" in page and "stable-diffusion-1.5" in page
    steps = [int(s) for s in re.findall(r'<figure id="step-(\d+)">', page)]
    assert steps == [0, 2, 4, 5], "previews by step, newest last"
    for name in ("learned_embeds-steps-2.safetensors", "learned_embeds-steps-4.safetensors",
                 "learned_embeds.safetensors"):
        assert f"<code>{name}</code>" in page
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(sources) == 2 + 3 + 4, "the loss plot, the score and size plot, three training photos, four previews"
    assert all(s.startswith("data:image/") for s in sources)
    # Nothing loads from the network (the page opens from disk): no link, source or stylesheet
    # URL may be remote. A setting's value shown as text (--invokeai_url) loads nothing.
    remote = re.findall(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//|url\(\s*["\']?\s*(?:https?:)?//|@import', page)
    assert remote == []


def test_report_shows_the_training_photos_beside_the_previews(trained):
    output, _ = trained
    page = (output / "report.html").read_text()
    photos = re.findall(r'<img class="photo" alt="training photo ([^"]+)"', page)
    assert len(photos) == 3 and all(name.endswith(".jpg") for name in photos)
    assert page.index("Training photos") < page.index('<figure id="step-0">')


def test_on_a_model_without_a_judge_neither_previews_nor_report_speak_of_one(trained):
    output, printed = trained
    assert all("verdict" not in text_of(png) for png in (output / "samples").iterdir())
    assert "judge" not in (output / "report.html").read_text().lower()
    assert "judge" not in printed.lower()


def caption_of(page: str, step: int) -> str:
    return re.search(rf'<figure id="step-{step}">\n<figcaption>(.*?)</figcaption>', page).group(1)


def test_each_step_names_the_file_each_tool_takes_and_installing_one_works_like_the_final(trained):
    """InvokeAI misreads ``learned_embeds-steps-N.safetensors``: it is given a command that
    installs the step's ``.bin`` as the final one is installed, keeping the replaced file."""
    import html
    import shlex

    output, _ = trained
    page = (output / "report.html").read_text()
    caption = html.unescape(caption_of(page, 2))
    assert "diffusers: <code>learned_embeds-steps-2.safetensors</code>" in caption
    assert "AUTOMATIC1111, ComfyUI, kohya: <code>psychedelic-steps-2.safetensors</code>" in caption
    command = re.search(r"InvokeAI: <code>(invokeai-ti --install-step 2 [^<]*)</code> installs "
                        r"<code>learned_embeds-steps-2.bin</code>", caption).group(1)
    final = html.unescape(caption_of(page, 5))
    installed_here = f"<strong>installed</strong> in <code>{output.parent / 'embeddings' / 'psychedelic'}</code>"
    assert f"InvokeAI: <code>learned_embeds.bin</code>, {installed_here}" in final
    assert "AUTOMATIC1111, ComfyUI, kohya: <code>psychedelic.safetensors</code>" in final
    assert "learned_embeds-steps-2.safetensors</code>" not in final

    root = Path(shlex.split(command)[shlex.split(command).index("--root") + 1])
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    before = installed.read_bytes()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(shlex.split(command)[1:]) == 0
    assert installed.read_bytes() == (output / "learned_embeds-steps-2.bin").read_bytes()
    assert (output / "learned_embeds.bin.previous").read_bytes() == before
    assert list(installed.parent.iterdir()) == [installed], "InvokeAI loads every file there"
    assert printed.getvalue().startswith(f"The embedding of step 2 is installed at {installed}; type <psychedelic>")
    page = (output / "report.html").read_text()
    assert installed_here in html.unescape(caption_of(page, 2)), "the report says which step is installed"
    assert installed_here not in html.unescape(caption_of(page, 5))
    words = shlex.split(command)[1:]
    words[1] = "5"
    assert main(words) == 0, "the final step is installed from the final file"
    assert installed.read_bytes() == (output / "learned_embeds.bin").read_bytes()
    page = (output / "report.html").read_text()
    assert installed_here in html.unescape(caption_of(page, 5)) and installed_here not in caption_of(page, 2)


def test_install_step_names_the_steps_there_are(trained, capsys):
    output, _ = trained
    root = output.parent
    assert main(["--install-step", "3", f"--root={root}", "--placeholder_token=psychedelic",
                 f"--output_dir={output}"]) == 2
    err = capsys.readouterr().err
    assert f"{output} has no embedding of step 3; the steps saved there are 2, 4, 5 (the final one)" in err


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_opens_from_disk_in_chromium_with_every_image_shown(trained, tmp_path):
    output, _ = trained
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         (output / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    # The loss plot, the figure of the evaluation score and the vectors' size, three photos and
    # four previews.
    assert 'data-images-shown="9 of 9"' in dom, dom[-2000:]
    assert dom.count('data-loaded="yes"') == 9 and 'data-loaded="no"' not in dom
    assert "<li>InvokeAI: <code>invokeai-ti --install-step 4 " in caption_of(dom, 4)


def test_report_marks_an_image_that_cannot_be_shown(tmp_path):
    """The check the browser test relies on does see a broken picture."""
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = tmp_path / "broken.html"
    from invokeai_ti.outputs.report import PAGE

    page.write_text(PAGE.format(title="t", trigger="t", summary="", plot="data:image/png;base64,AAAA",
                                photos="", previews="", settings="", learning=""))
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert 'data-images-shown="0 of 1"' in dom and "could not be shown" in dom


def test_a_resumed_run_continues_the_sequence_without_redoing_step_0(run_with_previews, tmp_path):
    root, _, _ = run_with_previews
    output = tmp_path / "resumed"
    assert main(command(root, output, "--max_train_steps=4", "--validation_steps=2", "--save_steps=2",
                        "--checkpointing_steps=2", "--num_validation_images=1")) == 0
    first_final = pixels(output / "samples" / "step-000004.png")
    step_0 = (output / "samples" / "step-000000.png").stat().st_mtime_ns
    # As if the run had been killed between the checkpoint at step 2 and its preview (the run
    # also checkpointed its last step, 4, so step 2's checkpoint is named).
    (output / "samples" / "step-000002.png").unlink()

    assert main(command(root, output, "--max_train_steps=6", "--validation_steps=2", "--save_steps=2",
                        "--checkpointing_steps=2", "--num_validation_images=1",
                        "--resume_from_checkpoint=checkpoint-2")) == 0
    samples = output / "samples"
    assert sorted(p.name for p in samples.iterdir()) == [
        "step-000000.png", "step-000002.png", "step-000004.png", "step-000006.png"]
    assert (samples / "step-000000.png").stat().st_mtime_ns == step_0, "step 0 is not redone"
    assert text_of(samples / "step-000002.png")["step"] == "2", "the missing preview is made on resume"
    assert text_of(samples / "step-000004.png")["embedding"] == "learned_embeds-steps-4.safetensors"
    assert pixels(samples / "step-000004.png") == first_final, "exact resume, same noise, same picture"
    assert text_of(samples / "step-000006.png")["final"] == "yes"


def train(root: Path, **changes) -> tuple[Trainer, torch.Tensor, list[list[str]]]:
    values = dict(
        root=root, model="stable-diffusion-1.5", placeholder_token="psychedelic", max_train_steps=3,
        train_batch_size=2, gradient_accumulation_steps=1, seed=3, mixed_precision="no", learning_rate=0.05,
    )
    plan = plan_run(TrainingSettings(**(values | changes)))
    trainer = Trainer(plan.settings, plan.model, plan.data_dir, plan.output_dir, show_progress=False,
                      notify=lambda _text: None)
    result = trainer.run()
    with open(plan.output_dir / "loss_log.csv", newline="") as handle:
        losses = [row[:3] for row in csv.reader(handle)]
    return trainer, result.vectors[0], losses


def test_previews_never_change_the_trained_embedding(make_root, tmp_path):
    """Bit-identical vectors and losses with a preview before every step and with none.

    Gradient checkpointing keeps the models in train mode, so the preview's switch to eval mode
    and back is exercised too.
    """
    root = make_root()
    _, without, losses_without = train(root, validation_prompt="none", output_dir=tmp_path / "off",
                                       gradient_checkpointing=True)
    trainer, with_previews, losses_with = train(root, validation_steps=1, num_validation_images=1,
                                                output_dir=tmp_path / "on", gradient_checkpointing=True)
    assert len(list((tmp_path / "on" / "samples").glob("*.png"))) == 4
    assert torch.equal(without, with_previews)
    assert losses_without == losses_with
    assert trainer.text.encoders[0].training, "the text encoder is back in train mode"


def test_none_turns_previews_off_but_keeps_the_loss_plot_and_report(make_root, capsys):
    """A new run in a used folder also moves the previews of the run before it aside."""
    root = make_root()
    output = root / "out"
    assert main(command(root, output, "--max_train_steps=1", "--num_validation_images=1")) == 0
    assert len(list((output / "samples").iterdir())) == 2
    capsys.readouterr()
    assert main(command(root, output, "--max_train_steps=2", "--validation_prompt=none")) == 0
    assert not (output / "samples").exists()
    assert len(list((output / "previous-run" / "samples").iterdir())) == 2
    assert (output / "loss.svg").exists()
    assert "turned off" in (output / "report.html").read_text()
    out = capsys.readouterr().out
    assert "Preview of step" not in out
    assert f"Report with the loss: {output / 'report.html'}" in out and "and the previews" not in out


def tiny_parts(model: Path, token: str):
    """The tiny model's tokenizer, text encoder and UNet, with ``token`` added as the trainer does."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(model / "tokenizer"))
    encoder = CLIPTextModel.from_pretrained(str(model / "text_encoder"))
    vectors = torch.nn.Parameter(torch.randn(1, 32))
    tokenizer.add_tokens([token])
    encoder.set_input_embeddings(ExtendedEmbedding(encoder.get_input_embeddings(), vectors))
    unet = UNet2DConditionModel.from_pretrained(str(model / "unet"))
    return tokenizer, encoder, unet, vectors


def make_previews(model: Path, output: Path, parts, **changes) -> Previews:
    """Previews of a run on the tiny model whose text encoder is ``parts`` (from ``tiny_parts``)."""
    from diffusers import AutoencoderKL, DDPMScheduler

    tokenizer, encoder, unet, vectors = parts
    settings = TrainingSettings(
        **({"placeholder_token": "psychedelic", "num_validation_images": 1, "resolution": 64} | changes))
    text = TextEncoders([tokenizer], [encoder], ["<psychedelic>"], [[len(tokenizer) - 1]], (vectors,))
    loaded = LoadedModel(
        StableDiffusionFamily(), text, unet, DDPMScheduler.from_pretrained(str(model / "scheduler")),
        torch.float32, lambda: AutoencoderKL.from_pretrained(str(model / "vae")),
    )
    run = Run(settings, OutputLayout(output, "psychedelic"), StableDiffusionFiles(), seed=5, total_steps=10,
              notify=lambda _text: None)
    return Previews(loaded, run)


def test_a_preview_leaves_randomness_modes_gradients_and_vectors_as_they_were(tiny_model, tmp_path):
    tokenizer, encoder, unet, vectors = tiny_parts(tiny_model, "<psychedelic>")
    unet.train()
    encoder.get_input_embeddings().train()
    modes = [m.training for m in (*unet.modules(), *encoder.modules())]
    before = vectors.detach().clone()
    rng = torch.get_rng_state()

    make_previews(tiny_model, tmp_path, (tokenizer, encoder, unet, vectors)).render(0)

    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for m in (*unet.modules(), *encoder.modules())] == modes
    assert torch.equal(vectors, before) and vectors.grad is None
    assert (tmp_path / "samples" / "step-000000.png").exists()


def test_the_trigger_in_the_prompt_reaches_the_trained_vectors(tiny_model, tmp_path):
    """Another vector for the trigger gives another picture; the same one the same picture."""
    parts = tiny_parts(tiny_model, "<psychedelic>")
    vectors = parts[-1]
    previews = make_previews(tiny_model, tmp_path, parts)
    first = pixels(previews.render(0))
    again = pixels(previews.render(1))
    with torch.no_grad():
        vectors.mul_(-3)
    moved = pixels(previews.render(2))
    assert first == again and first != moved


@pytest.mark.parametrize("count, shape", [(1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (6, (3, 2)), (8, (4, 2)),
                                          (9, (3, 3))])
def test_a_preview_grid_is_at_most_twice_as_wide_as_tall_and_leaves_no_hole_it_can_avoid(count, shape):
    assert grid_shape(count) == shape
    pictures = [Image.new("RGB", (4, 4), "red") for _ in range(count)]
    assert grid(pictures).size == (4 * shape[0], 4 * shape[1])


@pytest.mark.parametrize("steps, previews", [(1, [0, 1]), (5, [0, 3, 5]), (30, [0, 15, 30]),
                                             (1200, [0, 500, 1000, 1200])])
def test_by_default_a_short_run_previews_once_halfway_and_a_long_one_with_each_snapshot(steps, previews):
    """Before the first step, every interval, and the final one after the last step."""
    every = TrainingSettings(max_train_steps=steps).preview_every
    assert [step for step in range(steps) if step % every == 0] + [steps] == previews


@pytest.mark.parametrize(
    "changes, prompts",
    [
        ({}, ("a photo of a <psychedelic>", "a photo of a <psychedelic> on the beach")),
        ({"learnable_property": "style"},
         ("a painting in the style of <psychedelic>", "a painting of a dog in the style of <psychedelic>")),
        ({"validation_prompt": "a {} on a beach"}, ("a <psychedelic> on a beach",)),
        ({"validation_prompt": ("<psychedelic> at night", "a {} dog")}, ("<psychedelic> at night", "a <psychedelic> dog")),
        ({"validation_prompt": "NONE"}, ()),
    ],
)
def test_the_preview_prompts_default_to_the_trigger_alone_and_in_a_context(changes, prompts):
    settings = TrainingSettings(placeholder_token="psychedelic", **changes)
    assert preview_prompts(settings) == prompts
    assert settings.problems() == []
    assert default_prompt("object", "<x>") == "a photo of a <x>"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"validation_prompt": "a photo of psychedelic"}, "<psychedelic>"),
        ({"validation_prompt": ("a photo of {}", "a beach")}, "'a beach' does not contain the trigger"),
        ({"num_validation_images": 0}, "at least 1"),
        ({"validation_steps": 0}, "at least 1"),
    ],
)
def test_bad_preview_settings_are_named_with_their_fix(changes, fragment):
    problems = TrainingSettings(placeholder_token="psychedelic", **changes).problems()
    (name,) = changes
    assert [problem.field for problem in problems] == [name], problems
    assert fragment in problems[0].text


def test_preview_flags_have_the_diffusers_examples_names_and_defaults():
    from invokeai_ti.cli import build_parser, settings_from_args

    s = settings_from_args(build_parser().parse_args([]))
    assert (s.validation_prompt, s.num_validation_images, s.validation_steps, s.validation_seed) == (
        None, 4, None, None)
    s = settings_from_args(build_parser().parse_args([
        "--validation_prompt", "a {} dog", "--num_validation_images", "2", "--validation_steps", "100",
        "--validation_seed", "9"]))
    assert (s.validation_prompt, s.num_validation_images, s.validation_steps, s.validation_seed) == (
        ("a {} dog",), 2, 100, 9)
    s = settings_from_args(build_parser().parse_args(["--validation_prompt", "a {}", "--validation_prompt", "{} at night"]))
    assert s.validation_prompt == ("a {}", "{} at night"), "given several times, a row each"
