"""Finding, reading and preparing training images, and the caption templates.

Every picture is drawn here with Pillow, tiny unless size is the point, so each test shows the
exact pixels it expects back.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invokeai_ti import image_files
from invokeai_ti.data import decoding
from invokeai_ti.data.images import (
    IMAGE_EXTENSIONS,
    ImageScan,
    data_folder_problem,
    flipped,
    image_to_tensor,
    load_image,
    require_images,
    scan_images,
)
from invokeai_ti.data.templates import OBJECT_TEMPLATES, STYLE_TEMPLATES, caption, templates_for
from invokeai_ti.errors import UserError

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
BAND = 8


@pytest.fixture(autouse=True)
def warnings_are_errors():
    """Anything Pillow or we warn about would reach the user's terminal; make it fail instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def solid(path: Path, colour=RED, size: tuple[int, int] = (4, 4), mode: str = "RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def noise(path: Path, size: int = 64, **save) -> Path:
    """Random pixels do not compress, so cutting the file really loses image data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(path, **save)
    return path


def bands(mode: str, values: list) -> Image.Image:
    """Vertical stripes, BAND pixels wide, in a square; each stripe's centre is far from edges."""
    side = BAND * len(values)
    image = Image.new(mode, (side, side))
    for index, value in enumerate(values):
        image.paste(Image.new(mode, (BAND, side), value), (index * BAND, 0))
    return image


def band_centres(image: Image.Image, count: int) -> list[tuple[int, ...]]:
    return [image.getpixel((index * BAND + BAND // 2, BAND // 2)) for index in range(count)]


def close(actual, expected, tolerance: int) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def over_white(colour: tuple[int, int, int], alpha: int) -> tuple[int, ...]:
    return tuple(round((c * alpha + 255 * (255 - alpha)) / 255) for c in colour)


def write_rgb48_png(path: Path, pixels: list[tuple[int, int, int]]) -> Path:
    """Pillow cannot write 16-bit colour PNGs, which scanners and Photoshop produce; build one."""
    side = BAND * len(pixels)
    row = b"\x00" + b"".join(struct.pack(">HHH", *pixel) * BAND for pixel in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * side))
        + chunk(b"IEND", b"")
    )
    return path


# ---- finding the images ------------------------------------------------------------------


def test_every_image_extension_is_found_whatever_its_case(tmp_path):
    names = ["a.png", "b.JPG", "c.Jpeg", "d.gif", "e.WEBP", "f.bmp", "g.PnG"]
    for name in names:
        solid(tmp_path / name)
    scan = scan_images(tmp_path)
    assert [path.name for path in scan.images] == names
    assert scan.skipped == []
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}


def test_images_are_listed_in_name_order(tmp_path):
    for name in ["c.png", "a.png", "b.png"]:
        solid(tmp_path / name)
    assert [path.name for path in scan_images(tmp_path).images] == ["a.png", "b.png", "c.png"]


def test_hidden_files_and_subfolders_are_ignored_without_being_counted(tmp_path):
    solid(tmp_path / "cat.png")
    solid(tmp_path / ".hidden.png")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    solid(tmp_path / "more" / "dog.png")
    scan = scan_images(tmp_path)
    assert scan.images == [tmp_path / "cat.png"]
    assert scan.skipped == []


def test_other_files_are_skipped_as_not_an_image(tmp_path):
    solid(tmp_path / "cat.png")
    (tmp_path / "notes.txt").write_text("my cat", encoding="utf-8")
    scan = scan_images(tmp_path)
    assert scan.images == [tmp_path / "cat.png"]
    assert scan.skipped == [(tmp_path / "notes.txt", "not an image")]


def test_a_file_named_like_an_image_that_is_not_one_is_not_a_readable_image(tmp_path):
    solid(tmp_path / "cat.png")
    (tmp_path / "fake.jpg").write_text("<html>404 not found</html>", encoding="utf-8")
    scan = scan_images(tmp_path)
    assert scan.images == [tmp_path / "cat.png"]
    assert scan.skipped == [(tmp_path / "fake.jpg", "not a readable image")]


@pytest.mark.parametrize("name", ["broken.png", "broken.jpg"])
def test_a_truncated_image_among_good_ones_is_skipped_at_scan_time(tmp_path, name):
    solid(tmp_path / "a.png")
    whole = noise(tmp_path / "whole" / name).read_bytes()
    (tmp_path / name).write_bytes(whole[: len(whole) // 2])
    solid(tmp_path / "z.jpg")
    scan = scan_images(tmp_path)
    assert scan.images == [tmp_path / "a.png", tmp_path / "z.jpg"]
    assert scan.skipped == [(tmp_path / name, "truncated or corrupt image")]


def test_an_image_with_damaged_compressed_data_is_skipped(tmp_path):
    """Its header is intact, so only a real decode (not Image.verify on the header) finds it."""
    gradient = tmp_path / "gradient.png"
    Image.linear_gradient("L").save(gradient)
    data = bytearray(gradient.read_bytes())
    start = data.index(b"IDAT") + 4
    for index in range(start, start + 40):
        data[index] ^= 0x5A
    gradient.write_bytes(bytes(data))
    assert scan_images(tmp_path).skipped == [(gradient, "truncated or corrupt image")]


def test_an_image_with_more_pixels_than_the_limit_is_skipped_as_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(image_files, "MAX_DECODED_PIXELS", 99)
    solid(tmp_path / "small.png", size=(9, 11))
    solid(tmp_path / "large.png", size=(10, 10))
    scan = scan_images(tmp_path)
    assert scan.images == [tmp_path / "small.png"]
    assert scan.skipped == [(tmp_path / "large.png", "too large to read (10x10 pixels)")]


def test_file_names_with_spaces_and_non_ascii_characters_are_read(tmp_path):
    for name in ["mon chat été.png", "猫.jpg"]:
        solid(tmp_path / name, colour=BLUE)
    scan = scan_images(tmp_path)
    assert [path.name for path in scan.images] == ["mon chat été.png", "猫.jpg"]
    for path in scan.images:
        assert close(load_image(path, 4, False).getpixel((2, 2)), BLUE, 4)


@pytest.mark.parametrize("missing", ["nowhere", "file.png"])
def test_scanning_a_missing_folder_or_a_file_gives_an_empty_scan(tmp_path, missing):
    solid(tmp_path / "file.png")
    assert scan_images(tmp_path / missing) == ImageScan(tmp_path / missing, [], [])


def test_summary_counts_the_images_and_says_why_files_were_skipped(tmp_path):
    for name in ["a.png", "b.png", "c.jpg"]:
        solid(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "broken.png").write_bytes(noise(tmp_path / "n.png").read_bytes()[:200])
    (tmp_path / "n.png").unlink()
    assert scan_images(tmp_path).summary() == (
        "found 5 files: 3 images, 2 skipped "
        "(broken.png: truncated or corrupt image; notes.txt: not an image)"
    )


def test_summary_uses_the_singular_for_one(tmp_path):
    solid(tmp_path / "a.png")
    assert scan_images(tmp_path).summary() == "found 1 file: 1 image"


def test_long_lists_of_skipped_files_are_shortened(tmp_path):
    solid(tmp_path / "cat.png")
    for index in range(8):
        (tmp_path / f"note{index}.txt").write_text("x", encoding="utf-8")
    summary = scan_images(tmp_path).summary()
    assert summary.startswith("found 9 files: 1 image, 8 skipped (note0.txt: not an image; ")
    assert "note4.txt" in summary and "note5.txt" not in summary
    assert summary.endswith("note4.txt: not an image; and 3 more)")


# ---- telling the user what is wrong with the folder -----------------------------------------


def test_a_usable_folder_has_no_problem_even_with_junk_beside_the_images(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    solid(tmp_path / "cat.png")
    assert data_folder_problem(tmp_path) is None


def test_problem_for_a_missing_folder_says_to_create_it(tmp_path):
    folder = tmp_path / "cat"
    problem = data_folder_problem(folder)
    assert problem.field == "train_data_dir"
    assert str(folder) in problem.text and "does not exist; create it" in problem.text


def test_problem_for_a_file_given_as_the_folder(tmp_path):
    problem = data_folder_problem(solid(tmp_path / "cat.png"))
    assert problem.field == "train_data_dir"
    assert str(tmp_path / "cat.png") in problem.text and "is a file, not a folder" in problem.text


def test_problem_for_no_folder_at_all():
    problem = data_folder_problem(None)
    assert problem.field == "train_data_dir" and "no data folder is set" in problem.text


def test_problem_for_an_empty_folder_ignores_hidden_files(tmp_path):
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    problem = data_folder_problem(tmp_path)
    assert problem.field == "train_data_dir"
    assert str(tmp_path) in problem.text and "is empty" in problem.text


def test_problem_for_a_folder_of_non_images_gives_counts_and_reasons(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "fake.png").write_text("x", encoding="utf-8")
    problem = data_folder_problem(tmp_path)
    assert problem.field == "train_data_dir"
    assert "found 2 files, skipped 2" in problem.text
    assert "fake.png: not a readable image" in problem.text and "notes.txt: not an image" in problem.text


def test_require_images_raises_the_same_sentence_as_the_form_shows(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UserError) as raised:
        require_images(tmp_path)
    assert str(raised.value) == data_folder_problem(tmp_path).sentence
    with pytest.raises(UserError, match="does not exist"):
        require_images(tmp_path / "missing")


def test_require_images_returns_the_scan_with_its_skipped_files(tmp_path):
    solid(tmp_path / "cat.png")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    scan = require_images(tmp_path)
    assert scan.images == [tmp_path / "cat.png"]
    assert scan.skipped == [(tmp_path / "notes.txt", "not an image")]


# ---- reading one image -------------------------------------------------------------------


def test_exif_orientation_is_applied_before_squashing(tmp_path):
    """Phones store pictures sideways with an Orientation tag; 6 means "turn 90° clockwise"."""
    stored = Image.new("RGB", (32, 16), RED)
    stored.paste(Image.new("RGB", (16, 16), BLUE), (16, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    image = load_image(path, 16, False)
    assert close(image.getpixel((2, 2)), RED, 12)
    assert close(image.getpixel((13, 2)), RED, 12)
    assert close(image.getpixel((2, 13)), BLUE, 12)


def test_damaged_exif_metadata_neither_warns_nor_loses_the_orientation(tmp_path):
    """Camera firmware writes tags pointing past the end; Pillow warns about it, to nobody's use."""
    entries = struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<HHII", 0x010E, 2, 100, 4000)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + entries + struct.pack("<I", 0)
    path = tmp_path / "camera.jpg"
    stored = Image.new("RGB", (16, 8), RED)
    stored.paste(Image.new("RGB", (8, 8), BLUE), (8, 0))
    stored.save(path, exif=b"Exif\x00\x00" + tiff, quality=95)
    assert scan_images(tmp_path).images == [path]
    upright = load_image(path, 8, False)
    assert close(upright.getpixel((4, 1)), RED, 12)
    assert close(upright.getpixel((4, 6)), BLUE, 12)


@pytest.mark.parametrize(
    ("name", "image", "save", "expected", "tolerance"),
    [
        pytest.param("rgba.png", bands("RGBA", [(*RED, 255), (*BLUE, 0), (0, 0, 0, 128)]), {},
                     [RED, WHITE, over_white(BLACK, 128)], 1, id="RGBA"),
        pytest.param("la.png", bands("LA", [(50, 255), (50, 0), (0, 128)]), {},
                     [(50,) * 3, WHITE, over_white(BLACK, 128)], 1, id="LA"),
        pytest.param("rgba.webp", bands("RGBA", [(*RED, 255), (*BLUE, 0)]), {"lossless": True},
                     [RED, WHITE], 1, id="RGBA-webp"),
        pytest.param("palette.png", bands("P", [0, 1, 2]), {"transparency": b"\xff\x00\x80"},
                     [RED, WHITE, over_white(GREEN, 128)], 1, id="P-transparency-bytes"),
        pytest.param("palette.gif", bands("P", [0, 1, 2]), {"transparency": 1},
                     [RED, WHITE, GREEN], 0, id="P-transparency-gif"),
        pytest.param("palette.bmp", bands("P", [0, 1, 2]), {}, [RED, BLUE, GREEN], 0, id="P"),
        pytest.param("grey.png", bands("L", [0, 100, 255]), {},
                     [BLACK, (100,) * 3, WHITE], 0, id="L"),
        pytest.param("bilevel.png", bands("1", [0, 1]), {}, [BLACK, WHITE], 0, id="1"),
        pytest.param("cmyk.jpg", bands("CMYK", [(0, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 255)]),
                     {"quality": 100}, [WHITE, RED, BLACK], 8, id="CMYK"),
        pytest.param("deep.png", bands("I;16", [0, 32896, 65535]), {},
                     [BLACK, (128,) * 3, WHITE], 0, id="I;16"),
        pytest.param("deep-keyed.png", bands("I;16", [0, 32896, 65535]), {"transparency": 0},
                     [WHITE, (128,) * 3, WHITE], 0, id="I;16-transparency"),
    ],
)
def test_every_mode_becomes_rgb_with_transparency_over_white(tmp_path, name, image, save, expected,
                                                             tolerance):
    if image.mode == "P":
        image.putpalette([*RED, *BLUE, *GREEN])
    path = tmp_path / name
    image.save(path, **save)
    result = load_image(path, image.width, False)
    assert result.mode == "RGB"
    for actual, wanted in zip(band_centres(result, len(expected)), expected, strict=True):
        assert close(actual, wanted, tolerance), (actual, wanted)


def test_sixteen_bit_colour_png_is_scaled_down_not_clipped(tmp_path):
    path = write_rgb48_png(tmp_path / "scan.png", [(65535, 0, 0), (32896, 32896, 32896), (0, 0, 257)])
    result = load_image(path, 3 * BAND, False)
    assert band_centres(result, 3) == [RED, (128,) * 3, (0, 0, 1)]


def test_sixteen_bit_grey_in_older_pillows_mode_i_is_scaled_down_not_clipped():
    """Pillow before 10.x opened 16-bit grey PNGs as "I"; they must not all turn white."""
    image = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32))
    assert image.mode == "I"
    result = decoding._to_rgb(image)
    assert [result.getpixel((x, 0)) for x in range(3)] == [BLACK, (128,) * 3, WHITE]


def test_animated_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "blink.gif"
    first, second = Image.new("RGB", (4, 4), RED), Image.new("RGB", (4, 4), BLUE)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as animation:
        assert animation.n_frames == 2
    assert load_image(path, 4, False).getpixel((2, 2)) == RED


@pytest.mark.parametrize("size", [(1, 1), (3, 700), (700, 3), (640, 480), (7, 7)])
@pytest.mark.parametrize("center_crop", [False, True])
def test_any_size_comes_out_exactly_the_resolution_square(tmp_path, size, center_crop):
    path = solid(tmp_path / "any.jpg", colour=GREEN, size=size)
    image = load_image(path, 32, center_crop)
    assert (image.mode, image.size) == ("RGB", (32, 32))
    assert close(image.getpixel((16, 16)), GREEN, 8)


def test_a_one_pixel_image_is_usable(tmp_path):
    path = solid(tmp_path / "dot.png", colour=(10, 20, 30), size=(1, 1))
    assert scan_images(tmp_path).images == [path]
    image = load_image(path, 8, True)
    assert image.size == (8, 8)
    assert image.getpixel((0, 0)) == image.getpixel((7, 7)) == (10, 20, 30)


def test_center_crop_keeps_only_the_central_square(tmp_path):
    for name, size, offset in [("wide.png", (30, 10), (10, 0)), ("tall.png", (10, 30), (0, 10))]:
        image = Image.new("RGB", size, RED)
        image.paste(Image.new("RGB", (10, 10), GREEN), offset)
        image.save(tmp_path / name)
        cropped = load_image(tmp_path / name, 10, True)
        assert set(cropped.get_flattened_data()) == {GREEN}


def test_without_center_crop_the_whole_picture_is_squashed_into_the_square(tmp_path):
    image = Image.new("RGB", (30, 10), RED)
    image.paste(Image.new("RGB", (10, 10), GREEN), (10, 0))
    image.paste(Image.new("RGB", (10, 10), BLUE), (20, 0))
    image.save(tmp_path / "wide.png")
    squashed = load_image(tmp_path / "wide.png", 30, False)
    assert [squashed.getpixel((x, 15)) for x in (5, 15, 25)] == [RED, GREEN, BLUE]


def test_resizing_is_bicubic(tmp_path):
    path = noise(tmp_path / "noise.png", size=20)
    with Image.open(path) as original:
        expected = original.convert("RGB").resize((8, 8), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(load_image(path, 8, False)), np.asarray(expected))


def test_shrinking_a_large_picture_stays_close_to_a_plain_bicubic_resize(tmp_path):
    """Reducing by whole factors first must not visibly change what the model sees."""
    path = tmp_path / "gradient.png"
    Image.radial_gradient("L").resize((1000, 700)).convert("RGB").save(path)
    with Image.open(path) as original:
        plain = np.asarray(original.resize((64, 64), Image.Resampling.BICUBIC), dtype=np.int16)
    ours = np.asarray(load_image(path, 64, False), dtype=np.int16)
    assert np.abs(ours - plain).max() <= 3


def test_a_jpeg_is_never_decoded_below_the_training_resolution(tmp_path):
    """Draft mode may shrink a JPEG while decoding, but never so far that detail is lost."""
    path = noise(tmp_path / "detail.jpg", size=128, quality=95)
    with Image.open(path) as original:
        full = np.asarray(original.convert("RGB"), dtype=np.int16)
    ours = np.asarray(load_image(path, 128, False), dtype=np.int16)
    assert np.abs(ours - full).mean() < 1


def test_a_file_that_broke_after_scanning_reaches_the_user_as_a_sentence(tmp_path):
    path = tmp_path / "cat.png"
    path.write_text("not a picture any more", encoding="utf-8")
    with pytest.raises(UserError, match=r"cat\.png cannot be read \(not a readable image\)"):
        load_image(path, 8, False)


# ---- very large pictures -----------------------------------------------------------------

HUGE = (12000, 9000)
HUGE_COLOUR = (200, 120, 40)


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """108 megapixels: past Pillow's bomb limit, 432 MB decoded, under 2 MB on disk."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = tmp_path_factory.mktemp("huge") / "huge.jpg"
        Image.new("RGB", HUGE, HUGE_COLOUR).save(path, quality=50)
    return path


def test_a_huge_jpeg_loads_without_pillows_bomb_warning_and_the_limit_stays(huge_jpeg):
    limit = Image.MAX_IMAGE_PIXELS
    assert HUGE[0] * HUGE[1] > limit
    assert scan_images(huge_jpeg.parent).images == [huge_jpeg]
    image = load_image(huge_jpeg, 64, True)
    assert image.size == (64, 64)
    assert close(image.getpixel((32, 32)), HUGE_COLOUR, 4)
    assert Image.MAX_IMAGE_PIXELS == limit
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(huge_jpeg).close()


def test_pillows_pixel_limit_does_not_apply_to_our_reads_and_is_restored(tmp_path, monkeypatch):
    """Past twice the limit Pillow raises instead of warning; the user's photos must still load."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    path = solid(tmp_path / "photo.png", size=(6, 6))
    assert scan_images(tmp_path).images == [path]
    assert load_image(path, 4, False).size == (4, 4)
    assert Image.MAX_IMAGE_PIXELS == 10
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path).close()


def test_a_huge_jpeg_is_never_decoded_at_full_size(huge_jpeg):
    """Peak memory of a fresh process while scanning and loading, against the 432 MB buffer.

    VmHWM, not ru_maxrss: Linux carries the forking pytest process's peak into the child's.
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("reads peak memory from Linux's /proc")
    script = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from invokeai_ti.data.images import load_image, scan_images\n"
        "def peak():\n"
        "    status = Path('/proc/self/status').read_text()\n"
        "    return int(re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1)) * 1024\n"
        "before = peak()\n"
        "path = Path(sys.argv[1])\n"
        "assert scan_images(path.parent).images == [path]\n"
        "load_image(path, 512, True)\n"
        "load_image(path, 512, False)\n"
        "print(peak() - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(huge_jpeg)], capture_output=True,
                          text=True, check=True)
    grown = int(done.stdout)
    assert grown < 100 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MiB"


# ---- pixels for the VAE ------------------------------------------------------------------


def test_image_to_tensor_is_channels_first_float_in_minus_one_to_one():
    image = Image.new("RGB", (3, 2), BLACK)
    image.putpixel((1, 0), RED)
    image.putpixel((2, 1), WHITE)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    assert tensor.min() == -1.0 and tensor.max() == 1.0
    assert tensor[:, 0, 1].tolist() == [1.0, -1.0, -1.0]
    assert tensor[:, 1, 2].tolist() == [1.0, 1.0, 1.0]
    assert image_to_tensor(Image.new("RGB", (1, 1), (127, 128, 0)))[:, 0, 0].tolist() == \
        pytest.approx([-1 / 255, 1 / 255, -1.0], abs=1e-6)


def test_image_to_tensor_refuses_what_load_image_never_returns():
    with pytest.raises(ValueError, match="mode L"):
        image_to_tensor(Image.new("L", (2, 2)))


def test_flipped_mirrors_left_and_right():
    image = Image.new("RGB", (2, 1), RED)
    image.putpixel((1, 0), BLUE)
    mirror = flipped(image)
    assert [mirror.getpixel((x, 0)) for x in range(2)] == [BLUE, RED]


# ---- captions ----------------------------------------------------------------------------


def test_the_papers_template_lists_are_used_for_objects_and_styles():
    assert templates_for("object") is OBJECT_TEMPLATES
    assert templates_for("style") is STYLE_TEMPLATES
    assert len(OBJECT_TEMPLATES) == 27 and len(STYLE_TEMPLATES) == 19
    assert OBJECT_TEMPLATES[0] == "a photo of a {}"
    assert STYLE_TEMPLATES[0] == "a painting in the style of {}"
    assert not any("style" in t for t in OBJECT_TEMPLATES)
    assert all(t.endswith("in the style of {}") for t in STYLE_TEMPLATES)


def test_every_template_has_exactly_one_placeholder():
    for template in OBJECT_TEMPLATES + STYLE_TEMPLATES:
        assert template.count("{}") == 1
        assert template.count("{") == template.count("}") == 1


def test_caption_puts_the_token_in_the_template():
    assert caption("a photo of a {}", "<cat-toy>") == "a photo of a <cat-toy>"
    assert caption(STYLE_TEMPLATES[0], "<{weird}>") == "a painting in the style of <{weird}>"


def test_an_unknown_learnable_property_is_a_programming_error():
    with pytest.raises(ValueError, match="object or style"):
        templates_for("person")


def test_decoding_threads_read_side_by_side_and_pillow_settings_come_back():
    """--dataloader_num_workers threads must not queue behind one lock for the whole decode."""
    import threading

    limit = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    both_inside = threading.Barrier(2, timeout=10)
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            with decoding.pillow_for_our_files():
                assert Image.MAX_IMAGE_PIXELS is None
                both_inside.wait()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, "a second reader could not enter while the first was decoding"
    assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters
