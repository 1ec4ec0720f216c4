"""The form's remembered settings: InvokeAI's preferences.conf, read and written."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from invokeai_ti.form.preferences import load_preferences, save_preferences
from invokeai_ti.paths import RootLayout
from invokeai_ti.settings import TrainingSettings


def invokeai_235_file(root: Path) -> str:
    """What InvokeAI 2.3.5's form wrote (OmegaConf YAML of its marshalled arguments)."""
    return f"""\
model: stable-diffusion-1.5
resolution: 768
lr_scheduler: cosine
mixed_precision: 'no'
learnable_property: style
initializer_token: painting
placeholder_token: <psychedelic>
train_data_dir: {root}/text-inversion-training-data/psychedelic
output_dir: {root}/text-inversion-output/psychedelic
scale_lr: false
center_crop: true
enable_xformers_memory_efficient_attention: false
train_batch_size: 5
gradient_accumulation_steps: 2
max_train_steps: 2500
lr_warmup_steps: 10
learning_rate: 0.005
resume_from_checkpoint: latest
only_save_embeds: true
"""


def test_no_file_means_nothing_remembered(tmp_path):
    assert load_preferences(RootLayout(tmp_path)) == ({}, None)


def test_saved_settings_come_back_except_trigger_resume_root_and_trigger_folders(tmp_path):
    layout = RootLayout(tmp_path)
    settings = TrainingSettings(
        root=tmp_path,
        model="stable-diffusion-1.5",
        placeholder_token="psychedelic",
        resume_from_checkpoint="latest",
        train_data_dir=layout.data_dir("psychedelic"),
        output_dir=layout.output_dir("psychedelic"),
        learning_rate=2e-3,
        train_batch_size=5,
        mixed_precision="no",
        lr_scheduler="cosine",
        center_crop=True,
    )
    path = save_preferences(layout, settings)
    assert path == tmp_path / "text-inversion-output" / "preferences.conf"
    on_disk = yaml.safe_load(path.read_text(encoding="utf-8"))
    for forgotten in ("root", "placeholder_token", "resume_from_checkpoint", "train_data_dir", "output_dir"):
        assert forgotten not in on_disk
    values, note = load_preferences(layout)
    assert note is None
    restored = TrainingSettings.from_dict(values)
    expected = dataclasses.replace(
        settings, root=None, placeholder_token="", resume_from_checkpoint=None,
        train_data_dir=None, output_dir=None,
    )
    assert restored == expected


def test_folders_the_user_chose_are_remembered(tmp_path):
    layout = RootLayout(tmp_path)
    mine = tmp_path / "my-photos"
    save_preferences(layout, TrainingSettings(placeholder_token="cat", train_data_dir=mine))
    values, _ = load_preferences(layout)
    assert values["train_data_dir"] == str(mine)
    assert values["output_dir"] is None


def test_a_preview_prompt_is_remembered_for_the_next_trigger(tmp_path):
    layout = RootLayout(tmp_path)
    save_preferences(layout, TrainingSettings(placeholder_token="cat", validation_prompt="a <cat> on a sofa",
                                              validation_steps=100))
    values, _ = load_preferences(layout)
    assert (values["validation_prompt"], values["validation_steps"]) == ("a {} on a sofa", 100)
    assert TrainingSettings.from_dict(values | {"placeholder_token": "dog"}).problems() == []


def test_an_invokeai_235_file_carries_over(tmp_path):
    layout = RootLayout(tmp_path)
    layout.preferences.parent.mkdir(parents=True)
    layout.preferences.write_text(invokeai_235_file(tmp_path), encoding="utf-8")
    values, note = load_preferences(layout)
    assert note is None
    s = TrainingSettings.from_dict(values)
    assert (s.model, s.resolution, s.lr_scheduler, s.mixed_precision) == (
        "stable-diffusion-1.5", 768, "cosine", "no")
    assert (s.learnable_property, s.initializer_token, s.scale_lr, s.center_crop) == (
        "style", "painting", False, True)
    assert (s.train_batch_size, s.gradient_accumulation_steps, s.max_train_steps) == (5, 2, 2500)
    assert (s.lr_warmup_steps, s.learning_rate) == (10, 0.005)
    # The old trigger, its folders and its resume flag do not leak into the next run.
    assert s.placeholder_token == "" and s.resume_from_checkpoint is None
    assert s.train_data_dir is None and s.output_dir is None


def test_a_corrupt_file_is_ignored_with_a_note(tmp_path):
    layout = RootLayout(tmp_path)
    layout.preferences.parent.mkdir(parents=True)
    layout.preferences.write_text("model: [unclosed\n  : :", encoding="utf-8")
    values, note = load_preferences(layout)
    assert values == {}
    assert str(layout.preferences) in note and "not valid YAML" in note


def test_a_file_that_is_not_a_mapping_is_ignored_with_a_note(tmp_path):
    layout = RootLayout(tmp_path)
    layout.preferences.parent.mkdir(parents=True)
    layout.preferences.write_text("- just\n- a list\n", encoding="utf-8")
    values, note = load_preferences(layout)
    assert values == {} and "Ignored" in note


def test_mistyped_values_are_skipped_not_fatal(tmp_path):
    layout = RootLayout(tmp_path)
    layout.preferences.parent.mkdir(parents=True)
    layout.preferences.write_text("train_batch_size: lots\nlearning_rate: 0.001\n", encoding="utf-8")
    values, note = load_preferences(layout)
    s = TrainingSettings.from_dict(values)
    assert note is None and s.train_batch_size is None and s.learning_rate == 0.001
