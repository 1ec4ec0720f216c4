"""The form's logic without a terminal: fields, defaults, pre-filling, resume, validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from invokeai_ti.device import DeviceCaps
from invokeai_ti.errors import Problem, UserError
from invokeai_ti.form.preferences import load_preferences, save_preferences
from invokeai_ti.form.fields import (
    FORM_FIELDS,
    PROBLEMS_HEADING,
    complete_folder,
    field_to_fix,
    format_rate,
    label,
    parse_rate,
    problems_message,
    slider_step,
    too_small_message,
    widget_kind,
)
from invokeai_ti.form.state import FormState
from invokeai_ti.models import ModelInfo, discover_models
from invokeai_ti.outputs.checkpoints import RunShape
from invokeai_ti.paths import RootLayout
from invokeai_ti.settings import TrainingSettings

CPU = DeviceCaps("cpu", "CPU", 1, fp16=False, bf16=True, xformers=False,
                 xformers_reason="xFormers is not installed")
GPU = DeviceCaps("cuda", "GPU", 1, fp16=True, bf16=True, xformers=True,
                 xformers_reason="xFormers works on this GPU", memory_bytes=24 * 10**9)
GPU_NO_XFORMERS = dataclasses.replace(GPU, xformers=False, xformers_reason="xFormers is not installed")


def fake_model(name: str, base: str = "SD-1", resolution: int = 512, default: bool = False) -> ModelInfo:
    return ModelInfo(name, f"models/{name}", Path(f"/nowhere/{name}"), "models.yaml", base,
                     768, resolution, "epsilon", default, "")


SD15 = fake_model("sd-1.5", default=True)
SD21 = fake_model("sd-2.1-768", "SD-2", 768)
SDXL = fake_model("sdxl-base", "SDXL", 1024)


def build(tmp_path: Path, given: dict | None = None, *, caps: DeviceCaps = CPU,
          models: list[ModelInfo] | None = None, saved: dict | None = None) -> FormState:
    return FormState.build(given or {}, layout=RootLayout(tmp_path), caps=caps,
                           models=[SD15, SD21, SDXL] if models is None else models, saved=saved or {})


def test_the_18_fields_of_invokeai_in_order_with_their_labels_then_the_previews_then_ours():
    assert [label(name) for name in FORM_FIELDS] == [
        "Model Name",
        "Trigger Term",
        "Initializer",
        "Resume from last saved checkpoint",
        "Learnable property",
        "Data Training Directory",
        "Output Destination Directory",
        "Image resolution (pixels)",
        "Center crop images before resizing",
        "Mixed Precision",
        "Max Training Steps",
        "Batch Size (reduce if you run out of memory)",
        "Gradient Accumulation Steps",
        "Warmup Steps",
        "Learning Rate",
        "Scale learning rate by number of GPUs, steps and batch size",
        "Use xformers acceleration",
        "Learning rate scheduler",
        "Previews (p1 | p2; none=off)",
        "Preview every N steps",
        "Bit-identical results (slower)",
        "Checkpoint config folder",
        "Keep aspect ratios (buckets)",
        "Learn only the masked part (alpha or .mask.png)",
        "Shuffle caption tags",
        "Tags kept in front",
        "Tag dropout rate (0-1)",
        "Min-SNR gamma (0 = off)",
        "Noise offset",
        "Lowest timestep trained",
        "Timesteps trained below",
        "Vectors per trigger",
        "Keep the vectors at the vocabulary's size",
        "Learn only the vectors' direction",
        "Direction learning rate",
        "Stop when the evaluation score settles",
        "InvokeAI web address",
        "InvokeAI sign-in email",
        "InvokeAI password",
    ]
    kinds = {name: widget_kind(name) for name in FORM_FIELDS}
    assert [n for n, k in kinds.items() if k == "slider"] == [
        "max_train_steps", "train_batch_size", "gradient_accumulation_steps", "lr_warmup_steps",
        "validation_steps", "keep_tokens", "min_timestep", "max_timestep", "num_vectors"]
    assert [n for n, k in kinds.items() if k == "folder"] == ["train_data_dir", "output_dir", "model_config"]
    assert kinds["resume_from_checkpoint"] == "checkbox" and kinds["learning_rate"] == "text"
    assert [n for n, k in kinds.items() if k == "password"] == ["invokeai_password"]


def test_defaults_come_from_the_settings_dataclass(tmp_path):
    v = build(tmp_path).values
    assert v["model"] == "sd-1.5"
    assert v["placeholder_token"] == "" and v["initializer_token"] == "*"
    assert v["resume_from_checkpoint"] is False
    assert v["learnable_property"] == "object" and v["resolution"] == 512
    assert v["center_crop"] is False and v["scale_lr"] is True
    assert (v["max_train_steps"], v["gradient_accumulation_steps"], v["lr_warmup_steps"]) == (3000, 4, 0)
    assert v["learning_rate"] == "5.0e-04" and v["lr_scheduler"] == "constant"
    assert v["train_data_dir"] == str(tmp_path / "text-inversion-training-data")
    assert v["output_dir"] == str(tmp_path / "text-inversion-output")


@pytest.mark.parametrize(
    "caps, batch, xformers, precision",
    [(CPU, 3, False, "no"), (GPU, 8, True, "fp16"), (GPU_NO_XFORMERS, 3, False, "fp16")],
)
def test_device_aware_defaults(tmp_path, caps, batch, xformers, precision):
    state = build(tmp_path, caps=caps)
    v = state.values
    assert v["train_batch_size"] == batch
    assert v["enable_xformers_memory_efficient_attention"] is xformers
    assert v["mixed_precision"] == precision
    assert caps.xformers_reason in state.xformers_note()
    if not xformers:
        assert "defaults to 3" in state.xformers_note()


def test_model_default_is_last_used_then_marked_default_then_first(tmp_path):
    assert build(tmp_path, saved={"model": "sdxl-base"}).values["model"] == "sdxl-base"
    assert build(tmp_path, saved={"model": "gone"}).values["model"] == "sd-1.5"
    plain = [dataclasses.replace(m, is_default=False) for m in (SD21, SD15)]
    assert build(tmp_path, models=plain).values["model"] == "sd-2.1-768"


def test_model_list_shows_each_base(tmp_path):
    labels = build(tmp_path).choice_labels("model")
    assert labels == ["sd-1.5 (SD-1)", "sd-2.1-768 (SD-2)", "sdxl-base (SDXL)"]


def test_choosing_a_model_sets_its_native_resolution(tmp_path):
    state = build(tmp_path)
    for spec, size in (("sd-2.1-768", 768), ("sdxl-base", 1024), ("sd-1.5", 512)):
        state.model_chosen(spec)
        assert state.values["resolution"] == size
    tiny = fake_model("tiny", resolution=64)
    state = build(tmp_path, models=[tiny])
    assert state.values["resolution"] == 64
    assert state.choices("resolution") == [64, 512, 768, 1024]
    assert state.choice_labels("resolution")[0] == "64 (native size of this model)"


def test_saved_resolution_applies_only_to_the_model_it_was_saved_with(tmp_path):
    assert build(tmp_path, saved={"model": "sd-1.5", "resolution": 768}).values["resolution"] == 768
    assert build(tmp_path, saved={"model": "sdxl-base", "resolution": 768}).values["resolution"] == 768
    assert build(tmp_path, saved={"model": "gone", "resolution": 768}).values["resolution"] == 512


def test_a_given_resolution_stays_selectable(tmp_path):
    state = build(tmp_path, {"resolution": 256}, models=[fake_model("tiny", resolution=64)])
    assert state.values["resolution"] == 256
    assert state.choices("resolution") == [64, 256, 512, 768, 1024]
    state.values["resolution"] = 512
    assert state.choices("resolution") == [64, 256, 512, 768, 1024]


def test_no_model_says_how_to_add_one(tmp_path):
    with pytest.raises(UserError) as error:
        build(tmp_path, models=[])
    assert "invokeai-ti --demo" in str(error.value) and "models.yaml" in str(error.value)


def test_flags_given_with_gui_prefill_and_beat_saved_preferences(tmp_path):
    given = dict(placeholder_token="cat", max_train_steps=4, train_batch_size=1,
                 learning_rate=2e-3, lr_scheduler="linear", scale_lr=True)
    saved = {"max_train_steps": 2000, "lr_scheduler": "cosine", "learnable_property": "style",
             "placeholder_token": "old", "scale_lr": False}
    v = build(tmp_path, given, saved=saved).values
    assert (v["placeholder_token"], v["max_train_steps"], v["train_batch_size"]) == ("cat", 4, 1)
    assert (v["learning_rate"], v["lr_scheduler"]) == ("2.0e-03", "linear")
    assert v["learnable_property"] == "style"
    assert v["scale_lr"] is True, "a typed flag wins even when it repeats the default"
    assert v["train_data_dir"] == str(tmp_path / "text-inversion-training-data" / "cat")


def test_saved_device_choices_this_device_cannot_run_are_dropped(tmp_path):
    saved = {"enable_xformers_memory_efficient_attention": True, "mixed_precision": "fp16",
             "train_batch_size": 6}
    v = build(tmp_path, saved=saved).values
    assert v["enable_xformers_memory_efficient_attention"] is False
    assert v["mixed_precision"] == "no"
    assert v["train_batch_size"] == 6
    assert build(tmp_path, caps=GPU, saved=saved).values["enable_xformers_memory_efficient_attention"]


def test_saved_choices_the_form_cannot_show_are_dropped(tmp_path):
    v = build(tmp_path, saved={"lr_scheduler": "warp-speed", "learnable_property": "style"}).values
    assert v["lr_scheduler"] == "constant" and v["learnable_property"] == "style"


def test_typing_the_trigger_fills_the_folders_and_the_hint(tmp_path):
    state = build(tmp_path)
    for text in ("p", "ps", "psychedelic"):
        state.trigger_edited(text)
    assert state.values["train_data_dir"] == str(tmp_path / "text-inversion-training-data" / "psychedelic")
    assert state.values["output_dir"] == str(tmp_path / "text-inversion-output" / "psychedelic")
    assert state.prompt_hint() == "(Trigger by using <psychedelic> in your prompts)"
    state.trigger_edited("<toy>")
    assert state.values["output_dir"].endswith("text-inversion-output/toy")


def test_a_trigger_that_cannot_be_used_is_named_as_it_is_typed_and_moves_no_folder(tmp_path):
    state = build(tmp_path)
    for text in ("f", "fo", "fox", "fox ", "fox t", "fox toy"):
        state.trigger_edited(text)
    assert state.prompt_hint() == "(contains space; use only letters, digits, '.', '-' and '_')"
    assert state.values["train_data_dir"] == str(tmp_path / "text-inversion-training-data" / "fox")
    assert state.values["validation_prompt"] == "a photo of a <fox> | a photo of a <fox> on the beach"
    state.trigger_edited("fox-toy")
    assert state.values["train_data_dir"] == str(tmp_path / "text-inversion-training-data" / "fox-toy")
    assert state.values["output_dir"] == str(tmp_path / "text-inversion-output" / "fox-toy")
    assert state.values["validation_prompt"] == "a photo of a <fox-toy> | a photo of a <fox-toy> on the beach"
    assert state.prompt_hint() == "(Trigger by using <fox-toy> in your prompts)"


def test_a_short_run_gets_a_preview_halfway_and_the_interval_stays_default(tmp_path):
    state = build(tmp_path)
    state.max_steps_edited(30)
    assert state.values["validation_steps"] == 15
    assert state.to_settings()[0].validation_steps is None, "the default is not saved as a choice"
    assert dataclasses.replace(TrainingSettings(), max_train_steps=30).preview_every == 15, "the CLI agrees"
    state.max_steps_edited(3000)
    assert state.values["validation_steps"] == 500
    state.values["validation_steps"] = 100
    state.max_steps_edited(40)
    assert state.values["validation_steps"] == 100, "an interval the user chose stays"
    assert state.to_settings()[0].validation_steps == 100


def test_tab_completes_a_folder_name_only_when_there_is_something_to_complete(tmp_path):
    for name in ("photos-of-cats", "photos-of-dogs", "poster"):
        (tmp_path / name).mkdir()
    (tmp_path / "posters.txt").write_text("not a folder", encoding="utf-8")
    assert complete_folder(str(tmp_path / "pos")) == str(tmp_path / "poster")
    assert complete_folder(str(tmp_path / "ph")) == str(tmp_path / "photos-of-")
    assert complete_folder(str(tmp_path / "photos-of-")) is None, "two choices and nothing more in common"
    assert complete_folder(str(tmp_path / "poster")) is None, "a complete folder: Tab moves on"
    assert complete_folder(str(tmp_path / "x")) is None and complete_folder("") is None


def test_the_model_list_shows_names_and_the_description_only_below_it(tmp_path):
    described = dataclasses.replace(SD15, description="a long description " * 8)
    state = build(tmp_path, models=[described])
    assert state.choice_labels("model") == ["sd-1.5 (SD-1)"]
    assert state.model_description() == described.description


def test_the_cursor_goes_to_the_field_of_the_first_problem_that_has_one():
    problems = [Problem("tensorboard is not installed"), Problem("the trigger is bad", "placeholder_token"),
                Problem("the learning rate is bad", "learning_rate")]
    assert field_to_fix(problems) == "placeholder_token"
    assert field_to_fix([Problem("no GPU is chosen")]) is None


def test_the_default_preview_prompt_follows_the_trigger_and_property_and_means_default(tmp_path):
    state = build(tmp_path)
    assert state.values["validation_prompt"] == "a photo of a <trigger> | a photo of a <trigger> on the beach"
    assert state.values["validation_steps"] == 500, "previews come with the snapshots by default"
    state.trigger_edited("psychedelic")
    assert state.values["validation_prompt"] == "a photo of a <psychedelic> | a photo of a <psychedelic> on the beach"
    state.learnable_property_chosen("style")
    assert state.values["validation_prompt"] == (
        "a painting in the style of <psychedelic> | a painting of a dog in the style of <psychedelic>")
    assert state.to_settings()[0].validation_prompt is None

    state.values["validation_prompt"] = "a {} at dawn"
    state.trigger_edited("toy")
    assert state.values["validation_prompt"] == "a {} at dawn"
    assert state.to_settings()[0].validation_prompt == ("a {} at dawn",)
    state.values["validation_prompt"] = "a {} at dawn | {} in the snow"
    assert state.to_settings()[0].validation_prompt == ("a {} at dawn", "{} in the snow"), "a row per prompt"
    given = build(tmp_path, {"validation_prompt": "none", "validation_steps": 50}).values
    assert (given["validation_prompt"], given["validation_steps"]) == ("none", 50)


def test_the_lowest_timestep_is_every_timestep_for_any_property_and_a_chosen_one_stays(tmp_path):
    """As the diffusers example, kohya and OneTrainer: the low-noise timesteps carry fine detail."""
    state = build(tmp_path)
    assert state.values["min_timestep"] == 0 and state.values["max_timestep"] == 1000
    state.learnable_property_chosen("style")
    assert state.values["min_timestep"] == 0 and state.to_settings()[0].min_timestep == 0
    state.values["min_timestep"] = 250
    state.learnable_property_chosen("object")
    assert state.values["min_timestep"] == 250, "a number the user chose stays"
    assert state.to_settings()[0].min_timestep == 250
    assert build(tmp_path, {"min_timestep": 250}).values["min_timestep"] == 250


def test_a_folder_the_user_typed_does_not_follow_the_trigger(tmp_path):
    state = build(tmp_path)
    state.values["train_data_dir"] = "/photos/mine"
    state.trigger_edited("cat")
    assert state.values["train_data_dir"] == "/photos/mine"
    assert state.values["output_dir"].endswith("text-inversion-output/cat")


def make_checkpoint(output_dir: Path, step: int = 10, **run) -> Path:
    """A checkpoint's record as the trainer writes it; only the record is read before training."""
    settings = TrainingSettings(**{"placeholder_token": output_dir.name, "train_batch_size": 2,
                                   "gradient_accumulation_steps": 1} | run)
    shape = RunShape.of_run(settings, model="sd-1.5", resolution=512, num_vectors=settings.num_vectors,
                            token_dims=(768,), num_processes=1)
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    state = {"step": step, "seed": 1, "total_steps": step, "shape": dataclasses.asdict(shape)}
    (folder / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    return folder


def test_resume_is_ticked_exactly_when_the_output_folder_holds_a_checkpoint(tmp_path):
    layout = RootLayout(tmp_path)
    make_checkpoint(layout.output_dir("trained"))
    layout.output_dir("empty").mkdir(parents=True)
    state = build(tmp_path)
    state.trigger_edited("trained")
    assert state.values["resume_from_checkpoint"] is True
    state.trigger_edited("empty")
    assert state.values["resume_from_checkpoint"] is False
    state.output_dir_edited(str(layout.output_dir("trained")))
    assert state.values["resume_from_checkpoint"] is True
    assert build(tmp_path, {"placeholder_token": "trained"}).values["resume_from_checkpoint"]


PREFERENCES = {"train_batch_size": 3, "gradient_accumulation_steps": 4, "learning_rate": 5e-4}


def test_ticking_resume_fills_in_the_checkpoints_run_and_unticking_puts_back_the_form(tmp_path):
    layout = RootLayout(tmp_path)
    make_checkpoint(layout.output_dir("toy"), 20, learning_rate=5e-3, scale_lr=False, num_vectors=2)
    state = build(tmp_path, saved=PREFERENCES)
    state.trigger_edited("toy")
    v = state.values
    assert v["resume_from_checkpoint"] is True
    assert (v["train_batch_size"], v["gradient_accumulation_steps"]) == (2, 1)
    assert (v["learning_rate"], v["scale_lr"], v["num_vectors"]) == ("5.0e-03", False, 2)
    assert state.resume_status() == "(from step 20 of 3000)"
    assert state.resume_details(74) == [
        "checkpoint-20's run set (untick to undo): vectors 2, batch 2, accumulation",
        "1, learning rate 5.0e-03, scaling off.",
    ]

    remembered = state.settings_to_remember(state.to_settings()[0])
    assert (remembered.train_batch_size, remembered.learning_rate, remembered.num_vectors) == (3, 5e-4, 1), (
        "the preferences saved on OK stay the user's own")

    state.resume_toggled(False)
    assert (v["train_batch_size"], v["gradient_accumulation_steps"], v["learning_rate"]) == (3, 4, "5.0e-04")
    assert v["num_vectors"] == 1
    assert state.resume_status() == "(a new run from step 0)"
    assert state.resume_details(74) == [
        "A new run moves the earlier run's files to previous-run/: checkpoint-20",
        "and older."]

    state.resume_toggled(True)
    v["train_batch_size"] = 6
    state.resume_toggled(False)
    assert v["train_batch_size"] == 6, "a value typed after the fill is the user's and stays"
    assert v["gradient_accumulation_steps"] == 4


def test_the_new_run_line_names_an_earlier_runs_files_when_it_left_no_checkpoint(tmp_path):
    output = RootLayout(tmp_path).output_dir("toy")
    output.mkdir(parents=True)
    (output / "loss_log.csv").write_text("step,loss,learning_rate\n", encoding="utf-8")
    (output / "learned_embeds-steps-10.bin").write_bytes(b"")
    state = build(tmp_path)
    state.trigger_edited("toy")
    assert state.values["resume_from_checkpoint"] is False
    assert " ".join(state.resume_details(200)) == (
        "A new run moves the earlier run's files to previous-run/: the snapshots of step 10, loss_log.csv.")


def test_the_resume_line_names_the_checkpoint_and_follows_the_max_steps(tmp_path):
    layout = RootLayout(tmp_path)
    make_checkpoint(layout.output_dir("toy"), 1500)
    state = build(tmp_path)
    state.trigger_edited("toy")
    assert state.resume_status() == "(from step 1500 of 3000)"
    assert state.resume_details(80) == ["checkpoint-1500's run set (untick to undo): batch 2, accumulation 1."]
    state.values["max_train_steps"] = 1500
    assert state.resume_status() == "(step 1500 of 1500: nothing left)"
    assert state.resume_details(40) == ["Raise Max Training Steps to train more.",
                                        "checkpoint-1500's run set (untick to ..."]
    state.values.update(train_batch_size=3, max_train_steps=2000)
    assert state.resume_details(200) == [
        "Differs from checkpoint-1500's run: batch size 2 (checkpoint) vs 3 (now)."]
    matching = build(tmp_path, {"placeholder_token": "toy"},
                     saved={"train_batch_size": 2, "gradient_accumulation_steps": 1})
    assert matching.resume_details(200) == ["Continues checkpoint-1500 with its run's settings."]
    state.trigger_edited("toy2")
    assert state.values["resume_from_checkpoint"] is False
    assert (state.resume_status(), state.resume_details(80)) == ("", [])
    assert state.values["gradient_accumulation_steps"] == 4, "leaving the checkpoint's folder puts the form back"
    assert state.values["train_batch_size"] == 3, "the batch size typed while resuming stays"
    state.resume_toggled(True)
    assert state.resume_status() == "(no checkpoint yet: from step 0)"


def test_resume_takes_as_many_gpus_as_the_checkpoints_run_used(tmp_path):
    two = dataclasses.replace(GPU, count=2, device_names=("RTX A", "RTX B"))
    layout = RootLayout(tmp_path)
    make_checkpoint(layout.output_dir("toy"))  # made by one process
    state = build(tmp_path, caps=two)
    assert state.gpus == [0, 1]
    state.trigger_edited("toy")
    assert state.gpus == [0] and "GPUs 1" in state.resume_details(200)[0]
    state.resume_toggled(False)
    assert state.gpus == [0, 1]


def test_sliders_step_by_one_on_short_ranges_and_cross_long_ones_in_about_forty_presses():
    assert slider_step(10, 10000) == 250 and slider_step(1, 50) == 1 and slider_step(0, 100) == 1


def test_learning_rates_are_shown_readably_and_a_typed_word_is_refused_with_an_example():
    assert format_rate(5e-4) == "5.0e-04" and format_rate(1.23e-4) == "0.000123"
    assert parse_rate(" 5e-3 ") == (5e-3, None)
    problem = parse_rate("fast")[1]
    assert problem.field == "learning_rate" and "'fast'" in problem.text and "5e-4" in problem.text


def test_a_terminal_too_small_for_the_form_is_named_with_its_size_and_the_size_needed():
    assert too_small_message(70, 20) == (
        "Not enough window space for the interface: it needs at least 80x24 (this terminal is "
        "70x20). Please make your window larger and try again."
    )


def test_problems_are_listed_one_sentence_each_under_one_heading():
    assert problems_message([Problem("the trigger is bad", "placeholder_token"), Problem("Second.")]) == (
        f"{PROBLEMS_HEADING}\n* The trigger is bad.\n* Second."
    )


# Validation against a real (tiny) model: these run the same checks as the command line.


@pytest.fixture
def root(make_root) -> Path:
    return make_root("stable-diffusion-1.5", trigger="psychedelic")


def real_state(root: Path, caps: DeviceCaps = CPU, **given) -> FormState:
    layout = RootLayout(root)
    return FormState.build({"root": root, **given}, layout=layout, caps=caps,
                           models=discover_models(layout), saved={})


def test_a_correct_form_gives_a_plan_with_the_forms_values(root):
    state = real_state(root)
    state.trigger_edited("psychedelic")
    state.values.update(max_train_steps=7, learning_rate="1e-3", lr_scheduler="cosine")
    plan, problems = state.validate()
    assert problems == []
    s = plan.settings
    assert (s.placeholder_token, s.max_train_steps, s.learning_rate, s.lr_scheduler) == (
        "psychedelic", 7, 1e-3, "cosine")
    assert s.resolution == 64 and s.train_batch_size == 3 and s.resume_from_checkpoint is None
    assert plan.data_dir == root / "text-inversion-training-data" / "psychedelic"


@pytest.mark.parametrize(
    "trigger, expected",
    [("", "empty"), ("bad trigger!", "contains space, '!'")],
)
def test_bad_triggers_are_named(root, trigger, expected):
    state = real_state(root)
    state.trigger_edited(trigger)
    plan, problems = state.validate()
    assert plan is None
    assert field_to_fix(problems) == "placeholder_token" and expected in problems[0].text


def test_an_empty_trigger_is_what_is_missing_not_images_in_the_data_parent(root):
    state = real_state(root)
    assert state.values["train_data_dir"] == str(root / "text-inversion-training-data")
    _, problems = state.validate()
    assert [p.field for p in problems] == ["placeholder_token"], problems


def test_a_trigger_already_in_the_vocabulary(root):
    from transformers import CLIPTokenizer

    folder = next(root.glob("models/*/*/tokenizer"))
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens(["<cat>"])
    tokenizer.save_pretrained(str(folder))
    state = real_state(root)
    state.trigger_edited("cat")
    state.values["train_data_dir"] = str(root / "text-inversion-training-data" / "psychedelic")
    _, problems = state.validate()
    assert [p.field for p in problems] == ["placeholder_token"] and "already a token" in problems[0].text


def test_the_initializer_field_takes_a_phrase_with_a_vector_per_token(root):
    state = real_state(root)
    state.trigger_edited("psychedelic")
    state.values.update(initializer_token="orange cat", num_vectors=2)
    plan, problems = state.validate()
    assert problems == [] and plan.settings.initializer_token == "orange cat" and plan.settings.num_vectors == 2
    state.values.update(num_vectors=1)
    _, problems = state.validate()
    assert [p.field for p in problems] == ["initializer_token"]
    assert "'orange cat' is 2 tokens" in problems[0].text and "--num_vectors 2" in problems[0].text


def test_many_problems_are_listed_together_and_the_typed_text_is_kept(root):
    state = real_state(root, caps=CPU)
    state.trigger_edited("nophotos")
    blocker = root / "a-file"
    blocker.write_text("x", encoding="utf-8")
    state.values.update(
        initializer_token="xyzzy",
        output_dir=str(blocker / "out"),
        learning_rate="fast",
        mixed_precision="fp16",
        enable_xformers_memory_efficient_attention=True,
    )
    plan, problems = state.validate()
    assert plan is None
    by_field = {p.field: p.text for p in problems}
    assert set(by_field) == {"initializer_token", "output_dir", "learning_rate", "mixed_precision",
                             "enable_xformers_memory_efficient_attention", "train_data_dir"}, problems
    assert "'xyzzy' is 5 tokens" in by_field["initializer_token"] and "x y z z y</w>" in by_field["initializer_token"]
    assert "cannot be written" in by_field["output_dir"]
    assert "'fast'" in by_field["learning_rate"]
    assert "needs a CUDA GPU" in by_field["mixed_precision"]
    assert "xFormers is not installed" in by_field["enable_xformers_memory_efficient_attention"]
    assert str(root / "text-inversion-training-data" / "nophotos") in by_field["train_data_dir"]
    assert state.values["learning_rate"] == "fast"
    message = problems_message(problems)
    assert message.startswith(PROBLEMS_HEADING + "\n* ")


def test_no_model_chosen_and_a_negative_learning_rate(root):
    state = real_state(root)
    state.trigger_edited("psychedelic")
    state.values.update(model=None, learning_rate="-1")
    _, problems = state.validate()
    assert [p.field for p in problems] == ["model", "learning_rate"], problems
    assert "Model Name" in problems[0].text and "positive number" in problems[1].text


def test_an_empty_data_folder_says_what_was_found(root):
    folder = root / "text-inversion-training-data" / "junk"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    state = real_state(root)
    state.trigger_edited("junk")
    _, problems = state.validate()
    assert [p.field for p in problems] == ["train_data_dir"]
    assert str(folder) in problems[0].text and "found 1 file" in problems[0].text
    assert "skipped 1" in problems[0].text


def test_a_caption_without_the_trigger_sends_the_cursor_to_the_data_folder_not_the_trigger(root):
    """The fix is in the caption files, which live in the data folder."""
    folder = root / "text-inversion-training-data" / "psychedelic"
    first = sorted(folder.iterdir())[0]
    first.with_suffix(".txt").write_text("a poster", encoding="utf-8")
    state = real_state(root)
    state.trigger_edited("psychedelic")
    _, problems = state.validate()
    assert [p.field for p in problems] == ["train_data_dir"], problems
    assert first.with_suffix(".txt").name in problems[0].text and "<psychedelic>" in problems[0].text
    assert field_to_fix(problems) == "train_data_dir"


def test_a_run_defining_change_with_resume_ticked_is_a_problem_and_unticking_solves_it(root):
    output = root / "text-inversion-output" / "psychedelic"
    checkpoint = make_checkpoint(output, 20, lr_scheduler="linear")
    record = json.loads((checkpoint / "trainer_state.json").read_text())
    record["shape"].update(model="stable-diffusion-1.5", resolution=64, token_dim=32)
    (checkpoint / "trainer_state.json").write_text(json.dumps(record))
    state = real_state(root)
    state.trigger_edited("psychedelic")
    state.values["max_train_steps"] = 30
    plan, problems = state.validate()
    assert problems == [] and plan.settings.resume_from_checkpoint == "latest"
    assert (plan.settings.train_batch_size, plan.settings.lr_scheduler) == (2, "linear")

    state.values.update(train_batch_size=3, lr_scheduler="cosine")
    plan, problems = state.validate()
    assert plan is None and [p.field for p in problems] == ["resume_from_checkpoint"]
    assert "checkpoint-20" in problems[0].text
    assert "batch size 2 (checkpoint) vs 3 (now); learning rate scheduler linear (checkpoint) vs cosine (now)" in (
        problems[0].text)
    state.resume_toggled(False)
    plan, problems = state.validate()
    assert problems == [] and plan.settings.resume_from_checkpoint is None
    assert plan.settings.train_batch_size == 3


def test_resume_with_no_steps_left_or_an_unreadable_checkpoint_is_a_problem(root):
    output = root / "text-inversion-output" / "psychedelic"
    make_checkpoint(output, 20)
    state = real_state(root)
    state.trigger_edited("psychedelic")
    state.values["max_train_steps"] = 20
    _, problems = state.validate()
    (nothing_left,) = [p for p in problems if "nothing to train" in p.text]
    assert nothing_left.field == "max_train_steps" and "checkpoint-20 is already at step 20 of the 20" in nothing_left.text
    (make_checkpoint(output, 40) / "trainer_state.json").write_text("{", encoding="utf-8")
    state.trigger_edited("psychedelic")
    assert state.values["resume_from_checkpoint"] is True
    _, problems = state.validate()
    assert [p.field for p in problems] == ["resume_from_checkpoint"]
    assert str(output / "checkpoint-40") in problems[0].text and "cannot be read" in problems[0].text


def test_choosing_sdxl_sets_the_batch_size_from_the_gpus_memory_unless_the_user_chose_one(tmp_path):
    big_gpu = dataclasses.replace(GPU, memory_bytes=80 * 10**9)
    state = build(tmp_path, caps=big_gpu)
    assert state.values["train_batch_size"] == 8
    state.model_chosen("sdxl-base")
    assert state.values["train_batch_size"] == big_gpu.batch_size_for("SDXL") == 8
    small = build(tmp_path, caps=GPU)
    small.model_chosen("sdxl-base")
    assert small.values["train_batch_size"] == 2 and "defaults to 2 for SDXL" in small.xformers_note()
    small.model_chosen("sd-1.5")
    assert small.values["train_batch_size"] == 8
    chosen = build(tmp_path, caps=GPU)
    chosen.values["train_batch_size"] = 5
    chosen.model_chosen("sdxl-base")
    assert chosen.values["train_batch_size"] == 5


@pytest.mark.parametrize("gigabytes, batch", [(0, 1), (12, 1), (16, 1), (24, 2), (48, 6), (80, 8)])
def test_sdxl_batch_size_default_follows_gpu_memory(gigabytes, batch):
    caps = dataclasses.replace(GPU, memory_bytes=gigabytes * 10**9, kind="cuda" if gigabytes else "cpu")
    assert caps.batch_size_for("SDXL") == batch
    assert caps.batch_size_for("SD-1") == caps.default_batch_size


def test_the_data_and_loss_fields_are_typed_numbers_checked_on_ok_and_remembered(tmp_path):
    """Tag dropout, min-SNR and noise offset are typed as text; a saved value pre-fills them."""
    state = build(tmp_path, saved={"snr_gamma": 5.0, "bucket": False})
    assert state.values["snr_gamma"] == "5" and state.values["noise_offset"] == "0"
    assert state.values["bucket"] is False and state.values["masked_loss"] is True
    state.values["noise_offset"] = "0.05"
    settings, problems = state.to_settings()
    assert problems == [] and settings.noise_offset == 0.05 and settings.snr_gamma == 5.0
    state.values["snr_gamma"] = "five"
    _, problems = state.to_settings()
    assert [p.field for p in problems] == ["snr_gamma"] and "'five' is not a number" in problems[0].text


def test_the_password_typed_in_the_form_signs_in_this_run_and_is_never_remembered(tmp_path):
    state = build(tmp_path)
    state.values.update(invokeai_url=" http://192.168.1.5:9090 ", invokeai_email="me@example.com",
                        invokeai_password="Typed-Secret-99")

    settings = state.to_settings()[0]
    assert (settings.invokeai_url, settings.invokeai_email) == ("http://192.168.1.5:9090", "me@example.com")
    assert settings.invokeai_password == "Typed-Secret-99"
    saved = save_preferences(RootLayout(tmp_path), state.settings_to_remember(settings)).read_text(encoding="utf-8")
    assert "me@example.com" in saved and "Typed-Secret-99" not in saved

    again = build(tmp_path, saved=load_preferences(RootLayout(tmp_path))[0])
    assert again.values["invokeai_email"] == "me@example.com" and again.values["invokeai_password"] == ""
