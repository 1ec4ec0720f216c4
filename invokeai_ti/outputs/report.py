"""``loss.svg`` and ``report.html``: a run's progress as a person looks at it.

Both are drawn from files already in the output folder (the loss log, the recorded settings and
the preview PNGs with their text chunks, each read by its own format's module), so they can be
redrawn at any moment, by any run that continues in the folder, and always agree with what is on
disk. Every path comes from the run's ``OutputLayout``.

The report is one self-contained page: every image is embedded as a data URI and its content
policy forbids loading anything, so it opens from disk in any browser, offline, and can be mailed.

The loss plot is drawn in ``loss_plot``, what the report says of each step's files is gathered in
``step_files`` and the page's parts are written in ``report_sections``; this module puts the page
together.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..files import DamagedFile, atomic_write, read_json_object
from . import learning_report
from .layout import OutputLayout
from .loss_log import read_loss_log
from .loss_plot import write_loss_plot
from .preview_png import read_previews
from .report_sections import data_uri, photos_html, previews_html, rows, timesteps_trained
from .step_files import finished_result, install_command, installed_step


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
                                            result, installed_step(layout, settings, result), settings)
    figure = learning_report.learning_figure(layout)
    learning = "" if figure is None else (
        '<img class="plot" alt="the fixed evaluation batch\'s score and the vectors\' size per step" '
        f'src="{data_uri(figure, "image/svg+xml")}">'
    )
    plot = layout.loss_plot
    page = PAGE.format(
        learning=learning,
        title=html.escape(f"invokeai-ti: {trigger}"),
        trigger=html.escape(trigger),
        summary=rows(summary),
        plot=data_uri(plot.read_bytes(), "image/svg+xml") if plot.exists() else "",
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
