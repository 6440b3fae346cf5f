"""Figures, search tables and CNN weights obey the writers' one rule (issue 10, item 1).

A writer replaces only what trackoff_xr wrote, and only when asked (``mode="w"``):
:func:`~trackoff_xr.io.save_figure` (a PNG whose ``Software`` text names
trackoff_xr), :func:`~trackoff_xr.io.write_table` (a CSV with a search table's
header) and :func:`~trackoff_xr.io.save_weights` (weights whose JSON says
``"software": "trackoff_xr"``). Every case runs among user files and checks they
are byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from trackoff_xr import io as writers
from trackoff_xr.exceptions import (
    InvalidParameterError,
    OutputExistsError,
    OutputLocationError,
    ProtectedOutputError,
)
from trackoff_xr.io import (
    CSV_COLUMNS,
    SOFTWARE,
    TABLE_COLUMNS,
    check_output,
    save_figure,
    save_weights,
    write_table,
    write_weights_meta,
)

from .helpers import snapshot


@pytest.fixture
def fig():
    figure = Figure(figsize=(1.0, 1.0))  # no pyplot state
    figure.add_subplot().plot([0, 1], [1, 0])
    return figure


def user_png(path: Path) -> Path:
    """A PNG a user made: PIL's, with a Software text of its own."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "GIMP 2.10")
    Image.new("RGB", (4, 3), (200, 10, 10)).save(path, pnginfo=info)
    return path


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith((".partial", ".old"))]


# -- figures ---------------------------------------------------------------------------------


def test_save_figure_marks_its_png_and_replaces_it_only_when_asked(tmp_path, fig):
    path = tmp_path / "f.png"
    assert save_figure(fig, path, dpi=20) == path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (20, 20)
        assert image.text["Software"].startswith(f"{SOFTWARE} ")
    first = path.read_bytes()
    with pytest.raises(OutputExistsError, match="mode='w'"):
        save_figure(fig, path, dpi=40)
    assert path.read_bytes() == first
    save_figure(fig, path, mode="w", dpi=40)
    with Image.open(path) as image:
        assert image.size == (40, 40)
    assert partials(tmp_path) == []


@pytest.mark.parametrize("mode", ["w-", "w"])
@pytest.mark.parametrize("made_by", ["pil", "matplotlib", "not-a-png", "folder"])
def test_save_figure_never_replaces_a_users_file(tmp_path, fig, mode, made_by):
    path = tmp_path / "f.png"
    if made_by == "pil":
        user_png(path)
    elif made_by == "matplotlib":  # saved by plain savefig: Software "Matplotlib version..."
        fig.savefig(path, dpi=20)
    elif made_by == "not-a-png":
        path.write_bytes(b"my notes, named .png")
    else:
        path.mkdir()
        (path / "keep.txt").write_text("keep")
    (tmp_path / "other.txt").write_text("other")
    before = snapshot(tmp_path)
    with pytest.raises(ProtectedOutputError, match="did not write"):
        save_figure(fig, path, mode=mode, dpi=20)
    assert snapshot(tmp_path) == before


def test_save_figure_protects_inputs_and_refuses_urls(tmp_path, fig):
    ours = save_figure(fig, tmp_path / "ours.png", dpi=20)
    before = snapshot(tmp_path)
    with pytest.raises(ProtectedOutputError, match="input"):
        save_figure(fig, ours, mode="w", protect=[ours])
    with pytest.raises(OutputLocationError, match="local"):
        save_figure(fig, "memory://f.png")
    assert snapshot(tmp_path) == before


def test_an_interrupted_figure_leaves_nothing(tmp_path, fig, monkeypatch):
    def broken(target, **kwargs):
        Path(target).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []


def test_a_stale_partial_figure_is_cleaned_by_the_next_save(tmp_path, fig):
    stale = tmp_path / ".f.png.999999999.abcd.partial"  # a pid that does not run
    stale.write_bytes(b"half")
    save_figure(fig, tmp_path / "f.png", dpi=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


# -- search tables ---------------------------------------------------------------------------


def pairs_table(n: int = 2) -> pd.DataFrame:
    columns = TABLE_COLUMNS["s1_pairs"]
    return pd.DataFrame({c: [f"{c}{i}" for i in range(n)] for c in columns})


def test_write_table_replaces_only_a_table_it_wrote(tmp_path):
    path = tmp_path / "pairs.csv"
    assert write_table(pairs_table(1), path) == path
    assert path.read_text().splitlines()[0] == ",".join(TABLE_COLUMNS["s1_pairs"])
    first = path.read_bytes()
    with pytest.raises(OutputExistsError, match="mode='w'"):
        write_table(pairs_table(3), path)
    assert path.read_bytes() == first
    scenes = pd.DataFrame(columns=TABLE_COLUMNS["s1_scenes"])
    write_table(scenes, path, mode="w")  # a scenes table replaces a pairs table: both ours
    assert path.read_text().splitlines() == [",".join(TABLE_COLUMNS["s1_scenes"])]
    assert partials(tmp_path) == []


@pytest.mark.parametrize("mode", ["w-", "w"])
@pytest.mark.parametrize(
    "content",
    [
        "scene,notes\nS1A,my own list\n",
        ",".join(CSV_COLUMNS) + "\n0,1,2,3,4,5,6,7,8,9,10\n",  # a TrackOff point table
        ",".join(TABLE_COLUMNS["s1_pairs"]) + ",mine\n",  # one column more
    ],
    ids=["user-csv", "trackoff-points", "extra-column"],
)
def test_write_table_never_replaces_another_file(tmp_path, mode, content):
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    before = snapshot(tmp_path)
    with pytest.raises(ProtectedOutputError, match="did not write"):
        write_table(pairs_table(), path, mode=mode)
    assert snapshot(tmp_path) == before


def test_write_table_refuses_a_table_it_could_not_recognise_later(tmp_path):
    with pytest.raises(InvalidParameterError, match="columns"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    assert list(tmp_path.iterdir()) == []


def test_write_table_to_an_fsspec_url():
    import fsspec

    url = "memory://trackoff-tables/pairs.csv"
    assert write_table(pairs_table(), url) == url
    with pytest.raises(OutputExistsError):
        write_table(pairs_table(), url)
    write_table(pairs_table(4), url, mode="w")
    with fsspec.open(url, "rt") as handle:
        assert len(handle.read().splitlines()) == 5
    fsspec.filesystem("memory").rm("/trackoff-tables", recursive=True)


def test_table_columns_are_those_of_the_s1_search(monkeypatch):
    """TABLE_COLUMNS pins what s1.search_scenes and s1.find_pairs return."""
    pytest.importorskip("asf_search")
    from trackoff_xr.io import asf as s1

    from .helpers import recorded_results

    monkeypatch.setattr(s1._asf(), "search", lambda **kwargs: recorded_results())
    scenes = s1.search_scenes((-50.2, 69.05, -49.4, 69.25), "2021-03-01", "2021-04-01")
    pairs = s1.find_pairs(scenes, (6, 12))
    assert len(scenes) and len(pairs)
    assert tuple(scenes.columns) == TABLE_COLUMNS["s1_scenes"]
    assert tuple(pairs.columns) == TABLE_COLUMNS["s1_pairs"]


# -- CNN weights -----------------------------------------------------------------------------


def fake_save(content: bytes = b"weights"):
    def save(path: str) -> None:
        assert path.endswith(".weights.h5")  # Keras refuses any other ending
        Path(path).write_bytes(content)

    return save


def test_save_weights_marks_its_json_and_replaces_only_when_asked(tmp_path):
    path = tmp_path / "m.weights.h5"
    assert save_weights(fake_save(b"one"), {"version": "m"}, path) == path
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["version"] == "m" and meta["software"] == SOFTWARE
    assert "software_version" in meta
    before = snapshot(tmp_path)
    with pytest.raises(OutputExistsError, match="m.weights.h5.*mode='w'"):
        save_weights(fake_save(b"two"), {"version": "m"}, path)
    assert snapshot(tmp_path) == before
    save_weights(fake_save(b"two"), {"version": "m2"}, path, mode="w")
    assert path.read_bytes() == b"two"
    write_weights_meta({"version": "m3"}, path)
    assert json.loads((tmp_path / "m.json").read_text())["software"] == SOFTWARE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.weights.h5"]


@pytest.mark.parametrize("mode", ["w-", "w"])
@pytest.mark.parametrize(
    "files",
    [
        {"m.weights.h5": b"user weights"},
        {"m.json": b'{"version": "mine"}'},
        {"m.weights.h5": b"user weights", "m.json": b'{"version": "mine"}'},
        {"m.weights.h5": b"user weights", "m.json": b"not json"},
        {"m.json": b'{"software": "someone else"}'},
    ],
    ids=["h5-alone", "json-alone", "both", "bad-json", "other-software"],
)
def test_save_weights_never_replaces_a_users_files(tmp_path, mode, files):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    before = snapshot(tmp_path)
    with pytest.raises(ProtectedOutputError, match="did not write"):
        save_weights(fake_save(), {"version": "m"}, tmp_path / "m.weights.h5", mode=mode)
    with pytest.raises(ProtectedOutputError):
        check_output(tmp_path / "m.weights.h5", kind="weights", mode=mode)
    assert snapshot(tmp_path) == before


def test_an_interrupted_weights_save_leaves_nothing(tmp_path):
    def broken(path):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_weights(broken, {"version": "m"}, tmp_path / "m.weights.h5")
    assert list(tmp_path.iterdir()) == []


def test_weights_names_and_locations():
    with pytest.raises(InvalidParameterError, match=".weights.h5"):
        check_output("model.h5", kind="weights")
    with pytest.raises(OutputLocationError, match="local"):
        check_output("memory://m.weights.h5", kind="weights")
    assert writers.weights_json("a/m.weights.h5") == Path("a/m.json")


def test_the_shipped_json_stays_readable_and_unchanged():
    from trackoff_xr.matchers.cnn.features import DEFAULT_WEIGHTS, architecture, model_metadata

    folder = DEFAULT_WEIGHTS.parent
    before = snapshot(folder)
    meta = model_metadata(DEFAULT_WEIGHTS)
    assert meta["version"] == "trackoff_cnn_v2" and "software" not in meta
    layers, blur = architecture(DEFAULT_WEIGHTS)
    assert len(layers) > 0 and np.isfinite(blur)
    assert snapshot(folder) == before


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="kind='pdf'"):
        check_output(os.fspath(tmp_path / "x.pdf"), kind="pdf")
