"""The prompt templates: how a picture without a caption, and a preview, describe the trigger.

The textual-inversion paper's lists, kept as published. The trainer draws captions from them, the
previews and the form take the first one as the default prompt, and the world's vocabulary holds
their words; all of them read this one place.
"""

from __future__ import annotations

OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)

# The paper's list repeats two sentences; kept as published, since the repeats weight the draw.
STYLE_TEMPLATES: tuple[str, ...] = (
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a cropped painting in the style of {}",
    "the painting in the style of {}",
    "a clean painting in the style of {}",
    "a dirty painting in the style of {}",
    "a dark painting in the style of {}",
    "a picture in the style of {}",
    "a cool painting in the style of {}",
    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",
    "a cropped painting in the style of {}",
    "a good painting in the style of {}",
    "a close-up painting in the style of {}",
    "a rendition in the style of {}",
    "a nice painting in the style of {}",
    "a small painting in the style of {}",
    "a weird painting in the style of {}",
    "a large painting in the style of {}",
)

_TEMPLATES = {"object": OBJECT_TEMPLATES, "style": STYLE_TEMPLATES}


def templates_for(learnable_property: str) -> tuple[str, ...]:
    """Objects are described as photos of a thing, styles as paintings in a manner."""
    try:
        return _TEMPLATES[learnable_property]
    except KeyError:
        raise ValueError(
            f"unknown learnable property {learnable_property!r}; expected object or style"
        ) from None


def caption(template: str, token: str) -> str:
    """Only the template is parsed, so braces in a token are kept literally."""
    return template.format(token)


# The second default preview row: the trigger asked to share the picture with something it is
# not. A trigger that has grown to drown the rest of a prompt (the complaint users make most about
# textual inversion) shows there first: the beach, or the dog, is gone while the trigger alone
# still looks right.
CONTEXT_PROMPTS = {"object": "a photo of a {} on the beach", "style": "a painting of a dog in the style of {}"}


def default_prompt(learnable_property: str, token: str) -> str:
    """The first caption template of the run: 'a photo of a <t>', 'a painting in the style of <t>'."""
    return caption(templates_for(learnable_property)[0], token)


def default_prompts(learnable_property: str, token: str) -> tuple[str, str]:
    """The default preview rows: the trigger alone, as the captions say it, and in a context."""
    return default_prompt(learnable_property, token), caption(CONTEXT_PROMPTS[learnable_property], token)
