"""benchmarks/bench.py keeps working: two steps of our trainer on each tiny model, timed in a child.

The diffusers example is not part of this project, so only our trainer runs here; the example's
side is exercised by hand with ``--example`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def load_script(path: Path, name: str):
    """A benchmark script as a module; registered under ``name``, as its dataclasses look it up."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_bench():
    return load_script(BENCH, "invokeai_ti_bench")


@pytest.mark.parametrize("model", ["tiny_model", "tiny_sdxl_model"])
def test_benchmark_times_our_trainer_on_the_tiny_models(model, request, tmp_path):
    bench = load_bench()
    out = tmp_path / "result.json"
    result = bench.main([
        "--trainers=ours", f"--model-dir={request.getfixturevalue(model)}", f"--cache-dir={tmp_path / 'cache'}",
        "--images=2", "--resolution=64", "--batch=1", "--warmup=1", "--steps=1", "--repeats=1",
        f"--json={out}",
    ])
    (run,) = result["runs"]
    assert run["trainer"] == "ours" and run["precision"] == "no"
    assert len(run["step_s"]) == 1 and run["median_step_s"] > 0
    assert 0 < run["first_step_s"] < run["total_s"]
    assert run["peak_rss_bytes"] > 50 * 2**20
    assert "invokeai-ti" in result["table"]
    assert json.loads(out.read_text())["summary"][0]["repeats"] == 1


def test_the_phase_clock_accounts_for_every_millisecond_of_our_step(tiny_model, tmp_path):
    """--phases splits the step into its parts and what no part claims; they add up to the step,
    and the fixed evaluation batch is counted apart (a 4-step run scoring it every 2 steps: at
    steps 0, 2 and 4)."""
    bench = load_bench()
    result = bench.main([
        "--trainers=ours", f"--model-dir={tiny_model}", f"--cache-dir={tmp_path / 'cache'}",
        "--images=2", "--resolution=64", "--batch=1", "--warmup=1", "--steps=3", "--repeats=1", "--phases",
        "--validation-steps=2", "--validation-images=1",
    ])
    (run,) = result["runs"]
    phases = run["phases"]
    parts = [phases[label] for label in (*load_script(BENCH.parent / "phases.py", "phases_script").PER_STEP,
                                         "other (Python between the parts)")]
    for label in ("UNet forward", "UNet backward", "text encoder forward", "optimizer"):
        assert phases[label] > 0, label
    assert phases["VAE encoding"] == 0 and phases["vocabulary restore"] == 0
    assert sum(parts) == pytest.approx(phases["step"], rel=1e-9)
    assert phases["evaluations"] == 3 and phases["evaluation_ms"] > 0
    assert "| UNet backward |" in result["table"]


def test_torchvision_stand_in_covers_what_the_example_uses(tmp_path):
    bench = load_bench()
    example = tmp_path / "textual_inversion.py"
    example.write_text("from torchvision import transforms\nf = transforms.RandomHorizontalFlip(p=0.5)\n")
    bench.check_example(example)
    example.write_text("from torchvision import transforms\nf = transforms.ColorJitter(0.1)\n")
    with pytest.raises(SystemExit, match="ColorJitter"):
        bench.check_example(example)

    import sys

    from PIL import Image

    shim = bench.write_shim(tmp_path / "shim")
    sys.path.insert(0, str(shim))
    try:
        import torch

        namespace = {}
        exec(bench.TORCHVISION_SHIM, namespace)
        image = Image.new("RGB", (2, 1))
        image.putpixel((0, 0), (255, 0, 0))
        torch.manual_seed(0)
        flips = [namespace["RandomHorizontalFlip"](p=1.0)(image).getpixel((1, 0)) for _ in range(2)]
        assert flips == [(255, 0, 0)] * 2
        assert namespace["RandomHorizontalFlip"](p=0.0)(image).getpixel((0, 0)) == (255, 0, 0)
        wide = Image.new("RGB", (6, 2))
        wide.putpixel((2, 0), (0, 255, 0))
        assert namespace["CenterCrop"](2)(wide).getpixel((0, 0)) == (0, 255, 0)
        assert namespace["RandomCrop"].get_params(wide, (2, 6)) == (0, 0, 2, 6)
        assert namespace["functional"].crop(wide, 0, 2, 2, 2).getpixel((0, 0)) == (0, 255, 0)
        assert (shim / "torchvision" / "transforms" / "__init__.py").exists()
        assert not (shim / "torchvision" / "__init__.py").exists()
    finally:
        sys.path.remove(str(shim))


def test_the_full_size_vocabulary_is_clips_size_and_keeps_every_template_word_whole(tmp_path):
    """bench.py's SD-1.5- and SDXL-sized models use tools/pipelines.py's builders, the tests' own;
    their 49408-token vocabulary merges the template words as CLIP's BPE applies merges (a naive
    chain from the letters left "clean", "dark", "large" and "rendition" split)."""
    from transformers import CLIPTokenizer

    from tools.pipelines import CLIP_VOCAB_SIZE, KNOWN_WORDS, TEMPLATE_WORDS, write_clip_sized_tokenizer

    write_clip_sized_tokenizer(tmp_path / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path / "tokenizer"))
    assert len(tokenizer) == CLIP_VOCAB_SIZE
    assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [49406, 49407]
    split = [word for word in KNOWN_WORDS + TEMPLATE_WORDS if len(tokenizer.encode(word, add_special_tokens=False)) != 1]
    assert split == []
    bench = load_bench()
    assert {name: builder.__module__ for name, builder in bench.BUILDERS.items()} == dict.fromkeys(
        ("sd15", "sdxl", "tiny", "tiny-sdxl"), "tools.pipelines")


def test_the_learning_benchmark_can_train_ours_from_another_lowest_timestep():
    """The rows measured before --min_timestep stay reproducible: ``ours:free:5e-3:0``."""
    learning = load_script(BENCH.parent / "learning.py", "invokeai_ti_learning_bench")
    every = learning.Variant.parse("ours:free:5e-3:0")
    assert every.settings() == {"min_timestep": 0} and every.name == "invokeai-ti free @ 0.005, timesteps from 0"
    default = learning.Variant.parse("ours:direction:1e-2")
    assert default.settings() == {"learn_direction_only": True, "direction_learning_rate": 0.01}
    assert default.name == "invokeai-ti direction @ 0.01"
