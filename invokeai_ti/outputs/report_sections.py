"""The report's parts as HTML: the training photos as the run trained them, the previews by step
with each step's files, the judge's verdicts, the timesteps trained and the table rows; every
image embedded as a data URI."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from ..data.buckets import buckets_for
from ..data.folder import fit_to_bucket
from ..data.images import load_image, scan_images
from ..errors import UserError
from ..image_files import PNG_ONLY, open_image
from .layout import OutputLayout
from .preview_png import Preview
from .step_files import install_command, installed_embedding, is_installed, tool_files

REPORT_JPEG_QUALITY = 90
PHOTO_THUMBNAIL = 96
PHOTOS_SHOWN = 12


def data_uri(data: bytes, kind: str) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def jpeg_uri(path: Path) -> str:
    """A JPEG copy keeps a report of many large previews light; the PNG is a click away."""
    with open_image(path, formats=PNG_ONLY) as image:
        return image_uri(image)


def image_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=REPORT_JPEG_QUALITY)
    return data_uri(buffer.getvalue(), "image/jpeg")


def embedding_caption(preview: Preview, layout: OutputLayout, settings: dict, installed: bytes | None = None,
                      result: int | None = None) -> str:
    """The files of the preview's step for each tool; ``result`` is the step the final files hold
    (None while the run trains: then the final preview's, as the run's last step)."""
    if result is None:
        result = preview.step if preview.final else None
    files = tool_files(layout, preview.step, preview.step == result)
    if not files:
        if preview.step == 0:
            return "before training: the starting vectors"
        return "no embedding file was saved at this step (see --save_steps)"
    items = []
    for tool, found in files:
        names = " + ".join(f"<code>{html.escape(name)}</code>" for name in found)
        if tool == "InvokeAI" and is_installed(preview.step, layout, installed, result):
            where = html.escape(str(installed_embedding(settings).parent))
            text = f"{names}, <strong>installed</strong> in <code>{where}</code>"
        elif tool == "InvokeAI":
            text = f"<code>{html.escape(install_command(settings, layout.folder, preview.step))}</code> installs {names}"
        else:
            text = names
        items.append(f"<li>{tool}: {text}</li>")
    return '<ul class="files">' + "".join(items) + "</ul>"


def rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in pairs)


def as_trained(path: Path, settings: dict) -> tuple[Image.Image, str]:
    """A thumbnail of the photo as the run trained it, and its size in training: cut to its
    bucket when buckets were on (at the step the run used), else square, squashed or cropped."""
    center_crop = bool(settings.get("center_crop"))
    resolution = settings.get("resolution")
    step = settings.get("bucket_step_used") or settings.get("bucket_reso_steps")
    if not (settings.get("bucket") and isinstance(resolution, int) and isinstance(step, int)):
        image = load_image(path, PHOTO_THUMBNAIL, center_crop)
        return image, f"{resolution}x{resolution}" if isinstance(resolution, int) else "square"
    cut = fit_to_bucket(path, buckets_for(resolution, step))
    image = load_image(path, resolution, center_crop, cut)
    image.thumbnail((PHOTO_THUMBNAIL * 4, PHOTO_THUMBNAIL), Image.Resampling.LANCZOS)
    return image, str(cut.bucket)


def photos_html(settings: dict) -> str:
    """What the previews should come to look like: the photos as the trainer sees them."""
    folder = settings.get("train_data_dir")
    if not folder:
        return "<p>The run's data folder is not recorded.</p>"
    images = scan_images(Path(folder)).images
    if not images:
        return f"<p>No training photos are left in <code>{html.escape(folder)}</code>.</p>"
    figures = []
    for path in images[:PHOTOS_SHOWN]:
        try:
            thumbnail, size = as_trained(path, settings)
        except UserError:  # A photo broken since training is left out, never the report.
            continue
        figures.append(f'<img class="photo" alt="training photo {html.escape(path.name)}" '
                       f'title="{html.escape(path.name)}, trained at {size}" src="{image_uri(thumbnail)}">')
    more = len(images) - PHOTOS_SHOWN
    tail = f"<p>and {more} more.</p>" if more > 0 else ""
    return (f"<p>{len(images)} in <code>{html.escape(folder)}</code>:</p>\n"
            '<div class="photos">\n' + "\n".join(figures) + "\n</div>" + tail)


def verdicts_html(previews: list[Preview]) -> str:
    """The judge's share by step, present only where the previews carry a verdict (world models)."""
    judged = [preview for preview in previews if preview.judgement is not None]
    if not judged:
        return ""
    steps = ", ".join(f"step {preview.step}: {preview.judgement.share:.0%}" for preview in judged)
    return (f"<p>The world model's judge looked at every preview; share of pictures showing the "
            f"concept of the training photos: {steps}.</p>")


def previews_html(previews: list[Preview], layout: OutputLayout, settings: dict, result: int | None) -> str:
    """The previews by step, each with the files of that step each tool takes; the one whose file
    is installed for InvokeAI says so (read from disk, so an install after training shows too)."""
    installed = None if (path := installed_embedding(settings)) is None else path.read_bytes()
    if not previews:
        return "<p>No previews: they were turned off with <code>--validation_prompt none</code>.</p>"
    first = previews[0]
    prompts = first.prompts
    quoted = ", ".join(f"<q>{html.escape(prompt)}</q>" for prompt in prompts)
    said = f"Prompt {quoted}" if len(prompts) == 1 else f"A row of pictures for each prompt: {quoted}"
    intro = (
        f"<p>{said}; the same starting noise (seed "
        f"{first.seed}) at every step, so each preview differs from the one before "
        "only by what was learned. Pick the step you like best and give each tool the file named "
        "under it (each tool reads another layout). Newest last.</p>"
    ) + verdicts_html(previews)
    figures = []
    for preview in previews:
        label = f"Step {preview.step}" + (" (final)" if preview.final else "")
        relative = preview.path.relative_to(preview.path.parent.parent).as_posix()
        judged = preview.judgement
        verdict = f'<span class="verdict">{html.escape(judged.verdict)}</span>' if judged else ""
        figures.append(
            f'<figure id="step-{preview.step}">\n<figcaption><strong>{label}</strong>: '
            f"{embedding_caption(preview, layout, settings, installed, result)}{verdict}</figcaption>\n"
            f'<a href="{html.escape(relative)}"><img class="preview" alt="preview of step {preview.step}" '
            f'src="{jpeg_uri(preview.path)}"></a>\n</figure>'
        )
    return intro + '\n<div class="previews">\n' + "\n".join(figures) + "\n</div>"


def timesteps_trained(settings: dict) -> str:
    """The noise levels the run trained on, as its settings record gives them; a record from before
    ``--min_timestep`` trained on every timestep."""
    low, high = settings.get("min_timestep"), settings.get("max_timestep")
    if low is None:
        return "every timestep (recorded before --min_timestep)"
    trained = settings.get("timesteps_trained") or f"{low}-{high - 1 if isinstance(high, int) else '?'}"
    return (f"{html.escape(str(trained))} (<code>--min_timestep {html.escape(str(low))}</code>, "
            f"<code>--max_timestep {html.escape(str(high))}</code>)")
