"""Today's families from the command line, as a self-hoster configures them: entries of models:.

The tiny presets of each family (random weights, built in code) stand in for the downloaded models:
the same config keys, loading code and worker path serve ``flux-schnell`` or ``wan2.1-t2v-1.3b``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main
from generators.render import read_metadata


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  image: tiny-flux\n  video: tiny-wan\n  entries:\n"
        "    tiny-flux: {size: 64, steps: 2}\n"
        "    tiny-sana: {size: 64, steps: 2}\n"
        "    tiny-wan: {size: 64, steps: 2, frames: 8}\n"
        "    tiny-ltx: {size: 64, steps: 2, frames: 9}\n"
        "    tiny-svd: {size: 64, steps: 2, frames: 9}\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\n"
        f"worker:\n  results_dir: {tmp_path / 'results'}\n"
    )
    return config


def test_flux_grids_and_wan_clips_from_one_config(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    grid, clip = tmp_path / "grid.png", tmp_path / "clip.gif"
    assert (
        main(
            ["imagine", "a sign that says hello --n 2 --no blurry", "-o", str(grid), "-q", "--config", config]
        )
        == 0
    )
    assert main(["imagine", "a cat dancing --video", "-o", str(clip), "-q", "--config", config]) == 0
    metadata = read_metadata(grid.read_bytes())
    assert metadata["model"] == "tiny-flux" and metadata["negative"] == "blurry"
    with Image.open(clip) as frames:
        assert frames.format == "GIF" and frames.n_frames == 9  # 8 is not 4k+1: Wan makes 9


@pytest.mark.parametrize(
    ("prompt", "image", "says"),
    [
        ("a cat --model tiny-sana --strength 0.5", True, "tiny-sana can't remix a picture"),
        ("a cat --model tiny-svd", False, "tiny-svd only animates a picture"),
        ("a cat --model tiny-svd --no dogs", True, "tiny-svd takes no negative prompt"),
    ],
)
def test_what_a_family_cannot_do_is_refused_before_queueing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prompt: str, image: bool, says: str
) -> None:
    picture = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(picture)
    args = ["imagine", prompt, "--config", str(write_config(tmp_path)), "-q"]
    if image:
        args += ["--image", str(picture)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_a_picture_animated_by_ltx_names_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(picture)
    out = tmp_path / "moving.gif"
    code = main(
        ["imagine", "make it dance --video --model tiny-ltx", "--image", str(picture), "-o", str(out), "-q",
         "--config", str(write_config(tmp_path))]
    )  # fmt: skip
    assert code == 0
    assert "animation of image sha256:" in capsys.readouterr().out
    with Image.open(out) as frames:
        assert frames.n_frames == 9


@pytest.mark.expect_errors  # the model's failure is logged for the operator
@pytest.mark.parametrize(
    ("index", "says"),
    [
        ("{}", "names no pipeline class"),
        ('{"_class_name": "StableDiffusionPipelin"}', "did you mean StableDiffusionPipeline?"),
        ("not json", "names no pipeline class"),
    ],
)
def test_a_broken_model_folder_fails_in_one_line_and_never_hangs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], index: str, says: str
) -> None:
    folder = tmp_path / "models" / "turbo"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(index)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"models:\n  image: turbo\n  video: null\n  entries:\n    turbo: {{name: sd-turbo, path: {folder}}}\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\nworker:\n  results_dir: {tmp_path / 'results'}\n"
    )
    assert main(["imagine", "a cat", "-q", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("model error: ") and says in err and err.count("\n") == 1
