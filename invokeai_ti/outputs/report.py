"""``loss.png`` and ``report.html``: a run's progress as a person looks at it.

Both are drawn from files already in the output folder (the loss log, the recorded settings and
the preview PNGs with their text chunks, each read by its own format's module), so they can be
redrawn at any moment, by any run that continues in the folder, and always agree with what is on
disk. Every path comes from the run's ``OutputLayout``.

The report is one self-contained page: every image is embedded as a data URI and its content
policy forbids loading anything, so it opens from disk in any browser, offline, and can be mailed.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import shlex
from pathlib import Path

from PIL import Image

from ..data.buckets import buckets_for
from ..data.folder import fit_to_bucket
from ..data.images import load_image, scan_images
from ..errors import UserError
from ..files import DamagedFile, atomic_write, read_json_object
from ..image_files import PNG_ONLY, open_image
from ..paths import RootLayout
from ..settings.trigger import bare_trigger
from . import learning_report
from .layout import INSTALLED_NAME, OutputLayout
from .loss_log import LossRow, read_loss_log
from .preview_png import Preview, read_previews
from .run_result import result_step

REPORT_JPEG_QUALITY = 90
PHOTO_THUMBNAIL = 96
PHOTOS_SHOWN = 12


def smoothed(values: list[float]) -> list[float]:
    """A bias-corrected moving average over about a tenth of the run (at most 100 steps).

    The correction keeps the first steps at their real level instead of rising from zero.
    """
    window = min(100, max(1, len(values) // 10))
    keep = 1 - 1 / window
    average, out = 0.0, []
    for count, value in enumerate(values, 1):
        average = keep * average + (1 - keep) * value
        out.append(average / (1 - keep**count))
    return out


def write_loss_plot(layout: OutputLayout) -> Path:
    """Loss per step, its smoothed curve and the learning rate, as ``loss.png``."""
    figure = loss_figure(read_loss_log(layout.loss_log))
    atomic_write(layout.loss_plot, lambda tmp: figure.savefig(tmp, format="png"))
    return layout.loss_plot


def loss_figure(rows: list[LossRow]):
    """The plot, its legend below the axes: inside them it covered the curve it explains."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if rows:
        steps = [row.step for row in rows]
        losses = [row.loss for row in rows]
        axes.plot(steps, losses, color="#a9c4e4", linewidth=0.8, label="loss of each step")
        axes.plot(steps, smoothed(losses), color="#1f5fa8", linewidth=2, label="smoothed")
        rate_axes = axes.twinx()
        rate_axes.set_ylabel("learning rate")
        rates = [row.learning_rate for row in rows]
        rate_axes.plot(steps, rates, color="#d9822b", linewidth=1.2, linestyle="--", label="learning rate")
        rate_axes.set_ylim(0, max(rates) * 1.1 or 1)
        rate_axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        lines = axes.get_lines() + rate_axes.get_lines()
        figure.legend(lines, [line.get_label() for line in lines], loc="outside lower center",
                      ncols=len(lines), frameon=False)
    else:
        axes.text(0.5, 0.5, "no training step yet", ha="center", va="center", transform=axes.transAxes)
    return figure


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


def install_command(settings: dict, output_dir: Path, step: int | str) -> str:
    """The command that installs this step's snapshot for InvokeAI, runnable as it stands (with a
    step number for ``step``; the report also names it with a placeholder, N)."""
    trigger = bare_trigger(str(settings.get("placeholder_token", ""))) or "<trigger>"
    words = ["invokeai-ti", "--install-step", str(step)]
    root = settings.get("root")
    if root:
        words += ["--root", str(root)]
    words += ["--placeholder_token", trigger]
    if root is None or output_dir != RootLayout(Path(root)).output_dir(trigger):
        words += ["--output_dir", str(output_dir)]
    return " ".join(shlex.quote(word) for word in words)


def tool_files(layout: OutputLayout, step: int, final: bool) -> list[tuple[str, list[str]]]:
    """Which files of this step each tool takes (REFERENCE: who loads what), those on disk only;
    ``final`` when the final files hold this step (``outputs.run_result``).

    ``learned_embeds-steps-N.safetensors`` looks like the file to take but InvokeAI misreads its
    width, so InvokeAI gets the ``.bin`` (installed by a command) and the others their own file.
    Two encoders are asked for: SDXL's second diffusers file is named only when it exists.
    """
    names = dataclasses.replace(layout, encoders=2).embeddings(None if final else step)
    found = [
        ("InvokeAI", [names.invokeai]),
        ("diffusers", [path for path in names.diffusers if path.is_file()]),
        ("AUTOMATIC1111, ComfyUI, kohya", [names.single_file]),
    ]
    return [(tool, [path.name for path in paths]) for tool, paths in found if paths and paths[0].is_file()]


def installed_embedding(settings: dict) -> Path | None:
    """The file installed for InvokeAI in the run's root, when there is one."""
    trigger = bare_trigger(str(settings.get("placeholder_token", "")))
    root = settings.get("root")
    if not (root and trigger):
        return None
    path = RootLayout(Path(root)).embedding_dir(trigger) / INSTALLED_NAME
    return path if path.is_file() else None


def finished_result(layout: OutputLayout) -> int | None:
    """The step the final files hold once the run has written them; None while it trains."""
    return result_step(layout) if layout.embeddings().invokeai.is_file() else None


def is_installed(step: int, layout: OutputLayout, installed: bytes | None, result: int | None) -> bool:
    """Whether the installed file is a copy of this step's (the run's result: of either file)."""
    if installed is None:
        return False
    candidates = [layout.embeddings(step).invokeai]
    if step == result:
        candidates.append(layout.embeddings().invokeai)
    return any(path.is_file() and path.read_bytes() == installed for path in candidates)


def installed_step(layout: OutputLayout, settings: dict, result: int | None) -> int | None:
    """The step whose file is installed for InvokeAI, read from disk; None when none of this
    run's is."""
    if (path := installed_embedding(settings)) is None:
        return None
    installed = path.read_bytes()
    steps = ([] if result is None else [result]) + layout.snapshot_steps()
    return next((step for step in steps if is_installed(step, layout, installed, result)), None)


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


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; background: #fafafa; }}
h1 code, td code {{ background: #eee; padding: 0 .2em; }}
.summary td:first-child, .settings td:first-child {{ color: #555; padding-right: 1.5em; }}
.plot {{ max-width: 100%; }}
.previews {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
figure {{ margin: 0; width: 22rem; max-width: 100%; }}
figcaption {{ margin-bottom: .4rem; min-height: 2.6em; }}
.files {{ margin: .2rem 0 0; padding-left: 1.1rem; font-size: .85rem; overflow-wrap: anywhere; }}
.preview {{ width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }}
.photos {{ display: flex; flex-wrap: wrap; gap: .5rem; }}
.photo {{ height: 6rem; width: auto; border: 1px solid #ccc; image-rendering: pixelated; }}
.verdict {{ display: block; color: #155724; }}
.failed {{ color: #a00; }}
table {{ border-collapse: collapse; }}
.settings td {{ padding: .1em .5em; border-bottom: 1px solid #e4e4e4; vertical-align: top; }}
</style>
</head>
<body>
<h1>Textual Inversion of <code>{trigger}</code></h1>
<table class="summary">
{summary}
</table>
<h2>Loss</h2>
<img class="plot" alt="loss and learning rate per step" src="{plot}">
{learning}
<h2>Training photos</h2>
{photos}
<h2>Previews</h2>
{previews}
<h2>Settings</h2>
<table class="settings">
{settings}
</table>
<script>
// Marks each picture as shown or not, for the reader and for the test that opens this page.
window.addEventListener("load", () => {{
  let shown = 0;
  for (const image of document.images) {{
    const ok = image.complete && image.naturalWidth > 0;
    image.dataset.loaded = ok ? "yes" : "no";
    if (ok) {{
      shown += 1;
    }} else {{
      const note = document.createElement("p");
      note.className = "failed";
      note.textContent = "This picture could not be shown: " + image.alt;
      image.after(note);
    }}
  }}
  document.body.dataset.imagesShown = shown + " of " + document.images.length;
}});
</script>
</body>
</html>
"""


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


def write_report(layout: OutputLayout) -> Path:
    """``report.html``: the run's trigger, model, loss plot, training photos, previews by step (with
    the judge's verdict where the previews carry one) and settings."""
    damaged = None
    try:
        settings = read_json_object(layout.settings_record)
    except OSError:
        settings = {}
    except DamagedFile as error:
        # The page still shows what the other files hold; the record is rewritten by the next run.
        settings, damaged = {}, f"{error}; it is written again by the next run"
    losses = read_loss_log(layout.loss_log)
    trigger = str(settings.get("placeholder_token", "?"))
    if not trigger.startswith("<"):
        trigger = f"<{trigger}>"
    summary = [
        ("Model", html.escape(str(settings.get("model_location") or settings.get("model", "?")))),
        ("Steps trained", str(losses[-1].step) if losses else "0"),
        ("Last loss", f"{losses[-1].loss:.4f}" if losses else "-"),
        ("Seed", html.escape(str(settings.get("seed", "?")))),
        ("Timesteps trained", timesteps_trained(settings)),
        ("Output folder", html.escape(str(layout.folder))),
    ]
    if damaged is not None:
        summary.append(("Settings", html.escape(damaged)))
    result = finished_result(layout)
    summary += learning_report.summary_rows(layout, lambda step: install_command(settings, layout.folder, step),
                                            result, installed_step(layout, settings, result))
    figure = learning_report.learning_figure(layout)
    learning = "" if figure is None else (
        '<img class="plot" alt="the fixed evaluation batch\'s score and the vectors\' size per step" '
        f'src="{data_uri(figure, "image/png")}">'
    )
    plot = layout.loss_plot
    page = PAGE.format(
        learning=learning,
        title=html.escape(f"invokeai-ti: {trigger}"),
        trigger=html.escape(trigger),
        summary=rows(summary),
        plot=data_uri(plot.read_bytes(), "image/png") if plot.exists() else "",
        photos=photos_html(settings),
        previews=previews_html(read_previews(layout), layout, settings, result),
        settings=rows([(html.escape(key), f"<code>{html.escape(json.dumps(value))}</code>")
                       for key, value in settings.items()]),
    )
    atomic_write(layout.report, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return layout.report


def refresh_report(layout: OutputLayout) -> Path:
    """Redraw the loss plot and the page from what is on disk now; returns the page."""
    write_loss_plot(layout)
    return write_report(layout)
