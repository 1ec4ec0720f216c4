"""The command line speaks InvokeAI's flag names, generated from the settings dataclass."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from invokeai_ti.cli import GROUP_TITLES, build_parser, main, settings_from_args
from invokeai_ti.settings import TrainingSettings

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "REFERENCE.md"

INVOKEAI_FLAGS = """
--gui --front_end --root --root_dir --logging_dir --output_dir --model --revision --tokenizer_name
--train_data_dir --resolution --center_crop --placeholder_token --trigger_term --learnable_property
--initializer_token --checkpointing_steps --resume_from_checkpoint --save_steps --repeats --seed
--train_batch_size --num_train_epochs --max_train_steps --gradient_accumulation_steps
--gradient_checkpointing --learning_rate --scale_lr --lr_scheduler --lr_warmup_steps --adam_beta1
--adam_beta2 --adam_weight_decay --adam_epsilon --mixed_precision --allow_tf32
--enable_xformers_memory_efficient_attention --only_save_embeds --report_to --num_vectors
--checkpoints_total_limit --list-models --demo --initial_embedding --write-launcher
""".split()


def parse(*argv: str) -> TrainingSettings:
    return settings_from_args(build_parser().parse_args(list(argv)))


def test_help_lists_every_invokeai_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    # An on/off setting is shown once, as --[no-]name.
    shown = set(re.findall(r"--[a-z_0-9-]+", capsys.readouterr().out.replace("--[no-]", "--")))
    missing = [flag for flag in INVOKEAI_FLAGS if flag not in shown]
    assert not missing


def test_list_models_on_a_root_without_a_model_answers_without_importing_torch(tmp_path):
    """Nothing about finding models needs torch, whose import takes seconds."""
    script = (
        "import sys\n"
        "from invokeai_ti.cli import main\n"
        "code = main(['--list-models', '--root', sys.argv[1]])\n"
        "print('EXIT=%d TORCH=%s' % (code, 'torch' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("EXIT=1 TORCH=False"), done.stdout + done.stderr
    assert "--root" in done.stdout and "invokeai-ti-demo" in done.stdout


def test_help_starts_without_importing_torch():
    """``--help`` reads only the settings dataclass, so it answers at once, even before torch loads."""
    script = (
        "import sys\n"
        "from invokeai_ti.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH=' + str('torch' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "--placeholder_token" in done.stdout, done.stderr
    assert done.stdout.strip().endswith("TORCH=False")


def test_reference_flags_are_all_accepted():
    if not REFERENCE.exists():
        pytest.skip("shared/REFERENCE.md is not beside this checkout")
    section = REFERENCE.read_text().split("### The command line")[1].split("Typical use")[0]
    options = {o.split("_or_")[0] for o in re.findall(r"`(--[a-z_0-9]+)", section)}
    shown = {a for action in build_parser()._actions for a in action.option_strings}
    assert options - shown == set()


def test_every_line_of_help_fits_in_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["--help"])
    long = [line for line in capsys.readouterr().out.splitlines() if len(line) > 80]
    assert long == []


def help_sections(text: str) -> dict[str, list[list[str]]]:
    """``--help`` as the user reads it: each section's title and, per option, its flags in order."""
    sections: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            options = sections.setdefault(line[:-1], [])
        elif line.startswith("  -"):
            shown = line.strip().split("  ")[0].replace("--[no-]", "--")
            options.append([alias.split(" ")[0] for alias in shown.split(", ")])
    return sections


def test_help_shows_every_setting_in_its_group_in_field_order_and_nothing_else(capsys, monkeypatch):
    """The settings are the only source of the flags: a setting without its flag, in another
    section, or a flag no setting declares, is a flag lost or invented."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["--help"])
    sections = help_sections(capsys.readouterr().out)
    shown = [(title, flags) for title, options in sections.items() if title not in ("options", "Commands")
             for flags in options]
    expected = [(GROUP_TITLES[f.metadata["group"]], [f"--{f.name}", *f.metadata["aliases"]])
                for f in dataclasses.fields(TrainingSettings) if f.metadata.get("flag", True)]
    assert shown == expected
    hidden = [f.name for f in dataclasses.fields(TrainingSettings) if not f.metadata.get("flag", True)]
    assert hidden == ["invokeai_password"]


def test_the_settings_parts_keep_each_help_group_together_in_the_clis_order():
    """``--help`` shows a group once: the parts composing ``TrainingSettings`` must neither split a
    group's settings nor reorder the groups the CLI titles."""
    groups = [f.metadata["group"] for f in dataclasses.fields(TrainingSettings)]
    runs = [group for index, group in enumerate(groups) if index == 0 or groups[index - 1] != group]
    assert runs == list(GROUP_TITLES)


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["--placeholder_token", "blue", "triangle"],
         "triangle: a trigger is one word; write --placeholder_token blue_triangle"),
        (["--validation_prompt", "a", "photo", "of", "{}"],
         "(photo of {}: quote a value that has spaces, as --validation_prompt 'a photo of {}');"),
    ],
)
def test_a_value_the_shell_split_at_a_space_is_answered_with_how_to_write_it(argv, hint, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert hint in capsys.readouterr().err


def test_help_shows_no_empty_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "(default: )" not in capsys.readouterr().out


def test_a_mistyped_flag_is_answered_with_the_one_meant(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--max_steps", "30", "--placeholder_token", "cat"])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert "unrecognized arguments: --max_steps 30 (--max_steps: did you mean --max_train_steps?)" in err


def test_no_flags_means_the_dataclass_defaults():
    assert parse() == TrainingSettings()


def test_scale_lr_can_be_turned_off_and_on():
    assert parse("--no-scale_lr").scale_lr is False
    assert parse("--scale_lr").scale_lr is True


def test_invokeai_aliases_reach_the_same_settings():
    assert parse("--root_dir", "/r").root == Path("/r")
    assert parse("--trigger_term", "cat").placeholder_token == "cat"
    assert build_parser().parse_args(["--front_end"]).gui is True


def test_the_documented_typical_command_parses():
    s = parse(
        "--model=stable-diffusion-1.5", "--resolution=512", "--learnable_property=style",
        "--initializer_token=*", "--placeholder_token=<psychedelic>", "--train_data_dir=/d",
        "--output_dir=/o", "--scale_lr", "--train_batch_size=8", "--gradient_accumulation_steps=4",
        "--max_train_steps=3000", "--learning_rate=0.0005", "--resume_from_checkpoint=latest",
        "--lr_scheduler=constant", "--mixed_precision=fp16", "--only_save_embeds",
    )
    assert s.token == "<psychedelic>" and s.learnable_property == "style"
    assert s.resume_from_checkpoint == "latest" and s.train_batch_size == 8


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--learning_rate", "fast"], "--learning_rate needs a number, not 'fast'"),
        (["--max_train_steps", "1.5"], "--max_train_steps needs a whole number"),
        (["--lr_scheduler", "sawtooth"], "invalid choice"),
        (["--mixed_precision", "fp8"], "invalid choice"),
    ],
)
def test_unparseable_values_end_in_one_line_not_a_usage_dump(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1 and "usage:" not in err and "Traceback" not in err


def test_training_without_a_trigger_says_how_to_give_one(capsys, tmp_path):
    assert main(["--root", str(tmp_path)]) == 2
    assert "--placeholder_token" in capsys.readouterr().err


def test_every_setting_has_help_and_a_group():
    for f in dataclasses.fields(TrainingSettings):
        assert f.metadata["help"] and f.metadata["group"]
