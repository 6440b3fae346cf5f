"""A generated Sentinel-1 GRD pair with known motion, in the real product's layout.

:func:`make_safe_pair` writes two ``.SAFE`` folders that the project's
readers (:func:`trackoff_xr.io.safe.open_safe`), :func:`trackoff_xr.coregister`
and :mod:`trackoff_xr.io.geocode` treat exactly as downloaded products: the
``manifest.safe``, the VV annotation XML, a calibration LUT and a VV
measurement GeoTIFF (uint16 DNs, tiled, with ground control points).

How the annotation stays physically consistent
----------------------------------------------
A full IW scene (16,685 x 25,788 pixels) is too big for a test, so each
product is a **crop** of the template product's geometry (default: the
shared ``S1B_IW_GRDH_1SDV_20210401T052623_..._ECC8`` product): the window
``lines l0 .. l0 + H - 1``, ``samples s0 .. s0 + W - 1`` of the template,
with its 10 m pixels kept. Everything that depends on the window is
rewritten for it:

* ``productFirstLineUtcTime`` / ``productLastLineUtcTime`` (and the header's
  start/stop) are the template's first line time plus ``l0`` (``l0 + H - 1``)
  azimuth time intervals; ``numberOfLines`` / ``numberOfSamples`` are ``H``/``W``;
* the image's near-range ``slantRangeTime`` is the template's slant range
  time at sample ``s0``;
* the geolocation grid is the template's grid (a regular grid, to be
  interpolated bilinearly, as ESA specifies) sampled at the template's
  grid lines/pixels inside the window plus 6 even steps from edge to edge
  (so a small window still has 36 or more points), renumbered
  to the crop, every field (time, slant range time, latitude, longitude,
  height, angles) interpolated bilinearly;
* the slant-range/ground-range polynomials (``coordinateConversion``) move
  their ground-range origin by ``s0`` pixels, so they stay exact;
* lists indexed by the template's full lines/pixels that nothing here reads
  (thermal noise, swath merging) are emptied.

The orbit, attitude and every other time-tagged record are the
template's, all times moved by ``days`` for the secondary: an exact repeat
pass (same orbit, ``ascendingNodeTime`` + ``days``), so the geometry of
each product is the template's geometry, cropped.

The scene and its motion
------------------------
One "world" of generated backscatter texture (:func:`fractal_texture`)
lies on the template's radar grid around both windows; the reference
product images the window at ``(l0, s0)``. The secondary's slice starts
``shift[0]`` lines later (first line time later by ``shift[0]`` azimuth
time intervals) and ``shift[1]`` samples further in range (near-range
slant range time to match), so a ground point at reference pixel
``(y, x)`` is at secondary pixel ``(y - shift[0], x - shift[1])``; the
secondary's image is the world moved by a glacier-like field
(:func:`glacier_field`, or a uniform one) and sampled at that window, with
independent speckle. ``annotation_error`` adds an image shift the
annotation does not record (as orbit/timing errors do on real pairs):
the total global offset is ``-shift + annotation_error``.

Examples
--------
>>> import glob, tempfile
>>> template = glob.glob("../shared/data/s1_grd/*.SAFE")[0]
>>> pair = make_safe_pair(tempfile.mkdtemp(), template, shape=(256, 256), seed=0)
>>> from trackoff_xr.io.safe import open_safe
>>> ref, sec = open_safe(pair.ref), open_safe(pair.sec)
>>> ref.shape, pair.annotation_offset, tuple(round(v, 6) for v in pair.global_offset)
((256, 256), (-23.4, 6.7), (-21.8, 6.0))
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import InvalidParameterError
from ..georef import iso_date
from .synthetic import fractal_texture, glacier_field, speckle, warp

__all__ = ["SafePair", "make_safe_pair", "read_geolocation_grid"]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?")
_GRID_FIELDS = (
    "slantRangeTime",
    "latitude",
    "longitude",
    "height",
    "incidenceAngle",
    "elevationAngle",
)
#: orbits in the Sentinel-1 repeat cycle of 12 days
_ORBITS_PER_DAY = 175 / 12


@dataclasses.dataclass(frozen=True)
class SafePair:
    """The paths of a generated pair and what was built into it.

    Attributes
    ----------
    ref, sec : Path
        The two ``.SAFE`` folders.
    truth : xarray.Dataset
        ``dy``, ``dx``: motion (pixels) of every reference pixel, without the
        global offset; attributes ``global_dy``, ``global_dx``.
    global_offset : (float, float)
        ``(dy, dx)`` in pixels between the products' grids (a stable ground
        point at reference ``(y, x)`` is at secondary ``(y + dy, x + dx)``).
    annotation_offset : (float, float)
        The part of ``global_offset`` the annotation records (``-shift``).
    days : float
        Time between the first lines of the two products' ground window.
    origin : (int, int)
        ``(l0, s0)``: the reference window in the template's pixels.
    """

    ref: Path
    sec: Path
    truth: xr.Dataset
    global_offset: tuple[float, float]
    annotation_offset: tuple[float, float]
    days: float
    origin: tuple[int, int]


def _time(text: str) -> np.datetime64:
    return np.datetime64(text.strip().rstrip("Z"), "us")


def _iso(t: np.datetime64) -> str:
    return iso_date(t, unit="us")


def _seconds(t: np.datetime64, epoch: np.datetime64) -> float:
    return float((t - epoch) / np.timedelta64(1, "us")) * 1e-6


def _at(epoch: np.datetime64, seconds: float) -> np.datetime64:
    return epoch + np.timedelta64(int(round(seconds * 1e6)), "us")


def read_geolocation_grid(ann: ET.Element) -> dict[str, Any]:
    """Read the geolocation grid of an annotation as a regular grid of arrays.

    Parameters
    ----------
    ann : xml.etree.ElementTree.Element
        Root of a Sentinel-1 GRD annotation XML.

    Returns
    -------
    dict
        ``lines`` (n,), ``pixels`` (m,), ``epoch`` (datetime64) and, each of
        shape (n, m): ``azimuthTime`` (seconds after ``epoch``),
        ``slantRangeTime`` (s), ``latitude``, ``longitude`` (degrees),
        ``height`` (m), ``incidenceAngle``, ``elevationAngle`` (degrees).

    Raises
    ------
    InvalidParameterError
        The grid is not a full regular grid of lines x pixels.
    """
    points = list(ann.iter("geolocationGridPoint"))
    lines = np.array([float(p.findtext("line", "nan")) for p in points])
    pixels = np.array([float(p.findtext("pixel", "nan")) for p in points])
    ul, up = np.unique(lines), np.unique(pixels)
    if ul.size * up.size != len(points) or ul.size < 2 or up.size < 2:
        raise InvalidParameterError(
            f"the geolocation grid has {len(points)} points on {ul.size} lines and "
            f"{up.size} pixels, not a full regular grid; use a GRD product's annotation"
        )
    iy, ix = np.searchsorted(ul, lines), np.searchsorted(up, pixels)
    times = [_time(p.findtext("azimuthTime", "")) for p in points]
    epoch = min(times)
    grid: dict[str, Any] = {"lines": ul, "pixels": up, "epoch": epoch}
    az = np.empty((ul.size, up.size))
    az[iy, ix] = [_seconds(t, epoch) for t in times]
    grid["azimuthTime"] = az
    for name in _GRID_FIELDS:
        values = np.empty((ul.size, up.size))
        values[iy, ix] = [float(p.findtext(name, "nan")) for p in points]
        grid[name] = values
    return grid


def _grid_sample(grid: dict[str, Any], lines: np.ndarray, pixels: np.ndarray, name: str) -> Any:
    """Bilinear interpolation (linear extrapolation outside) of one grid field."""
    from scipy.interpolate import RegularGridInterpolator

    interp = RegularGridInterpolator(
        (grid["lines"], grid["pixels"]), grid[name], bounds_error=False, fill_value=None
    )
    ll, pp = np.meshgrid(lines, pixels, indexing="ij")
    return interp(np.stack([ll.ravel(), pp.ravel()], axis=-1)).reshape(ll.shape)


def _axis_points(knots: np.ndarray, start: float, size: int, count: int = 6) -> np.ndarray:
    """Whole crop positions: the template's knots inside the window, ``count`` even steps."""
    inner = np.round(knots - start)
    inner = inner[(inner > 0) & (inner < size - 1)]
    even = np.round(np.linspace(0.0, size - 1.0, count))
    return np.unique(np.concatenate([even, inner]))


def _set(root: ET.Element, path: str, value: str) -> None:
    for node in root.iterfind(path):
        node.text = value


def _crop_annotation(
    ann: ET.Element, l0: float, s0: float, shape: tuple[int, int], days: float
) -> ET.Element:
    """Rewrite a template annotation (in place) for a window of it, ``days`` later."""
    rows, cols = shape
    info = "imageAnnotation/imageInformation/"
    ati = float(ann.findtext(info + "azimuthTimeInterval", "nan"))
    spacing = float(ann.findtext(info + "rangePixelSpacing", "nan"))
    first = _time(ann.findtext(info + "productFirstLineUtcTime", ""))
    grid = read_geolocation_grid(ann)

    start = _at(first, l0 * ati)
    stop = _at(first, (l0 + rows - 1) * ati)
    for path in ("adsHeader/startTime", info + "productFirstLineUtcTime"):
        _set(ann, path, _iso(start))
    for path in ("adsHeader/stopTime", info + "productLastLineUtcTime"):
        _set(ann, path, _iso(stop))
    _set(ann, info + "numberOfLines", str(rows))
    _set(ann, info + "numberOfSamples", str(cols))
    near = _grid_sample(grid, np.array([l0]), np.array([s0]), "slantRangeTime")[0, 0]
    _set(ann, info + "slantRangeTime", f"{near:.15e}")

    # geolocation grid: the template's knots inside the window, plus its edges
    lines = _axis_points(grid["lines"], l0, rows)
    pixels = _axis_points(grid["pixels"], s0, cols)
    values = {
        n: _grid_sample(grid, lines + l0, pixels + s0, n) for n in ("azimuthTime", *_GRID_FIELDS)
    }
    point_list = ann.find("geolocationGrid/geolocationGridPointList")
    if point_list is None:
        raise InvalidParameterError("the template annotation has no geolocation grid")
    for child in list(point_list):
        point_list.remove(child)
    for i, line in enumerate(lines):
        for j, pixel in enumerate(pixels):
            node = ET.SubElement(point_list, "geolocationGridPoint")
            ET.SubElement(node, "azimuthTime").text = _iso(
                _at(grid["epoch"], values["azimuthTime"][i, j])
            )
            ET.SubElement(node, "slantRangeTime").text = f"{values['slantRangeTime'][i, j]:.15e}"
            ET.SubElement(node, "line").text = str(int(line))
            ET.SubElement(node, "pixel").text = str(int(pixel))
            for name in _GRID_FIELDS[1:]:
                ET.SubElement(node, name).text = f"{values[name][i, j]:.15e}"
    point_list.set("count", str(len(lines) * len(pixels)))

    # slant range <-> ground range polynomials: ground range counts from sample s0 now
    offset = s0 * spacing
    for conv in ann.iter("coordinateConversion"):  # the section and each record
        gr0 = conv.find("gr0")
        if gr0 is not None and gr0.text:
            gr0.text = f"{float(gr0.text) - offset:.15e}"
        srgr = conv.find("srgrCoefficients")
        if srgr is not None and srgr.text:
            coeffs = [float(c) for c in srgr.text.split()]
            coeffs[0] -= offset
            srgr.text = " ".join(f"{c:.15e}" for c in coeffs)

    # lists indexed by the template's full lines/pixels: emptied
    for path in ("generalAnnotation/noiseList", "swathMerging/swathMergeList"):
        section = ann.find(path)
        if section is not None:
            for child in list(section):
                section.remove(child)
            section.set("count", "0")
    if days:
        for node in ann.iter():
            if node.text and _ISO.fullmatch(node.text.strip()):
                node.text = _iso(_shift(_time(node.text), days))
    return ann


def _shift(t: np.datetime64, days: float) -> np.datetime64:
    return t + np.timedelta64(int(round(days * 86400e6)), "us")


def _calibration_xml(ann: ET.Element, shape: tuple[int, int], gain: float) -> ET.Element:
    """Build a calibration LUT (constant gain: sigma0 = DN**2 / gain**2) for a product."""
    info = "imageAnnotation/imageInformation/"
    first = _time(ann.findtext(info + "productFirstLineUtcTime", ""))
    ati = float(ann.findtext(info + "azimuthTimeInterval", "nan"))
    root = ET.Element("calibration")
    header = ET.SubElement(root, "adsHeader")
    for tag in ("missionId", "productType", "polarisation", "mode", "swath", "startTime"):
        value = ann.findtext(f"adsHeader/{tag}")
        if value is not None:
            ET.SubElement(header, tag).text = value
    info_node = ET.SubElement(root, "calibrationInformation")
    ET.SubElement(info_node, "absoluteCalibrationConstant").text = "1.000000e+00"
    vectors = ET.SubElement(root, "calibrationVectorList")
    lines = np.unique(np.linspace(0, shape[0] - 1, 5).round().astype(int))
    pixels = np.unique(np.linspace(0, shape[1] - 1, 9).round().astype(int))
    vectors.set("count", str(lines.size))
    for line in lines:
        vec = ET.SubElement(vectors, "calibrationVector")
        ET.SubElement(vec, "azimuthTime").text = _iso(_at(first, line * ati))
        ET.SubElement(vec, "line").text = str(line)
        ET.SubElement(vec, "pixel", count=str(pixels.size)).text = " ".join(map(str, pixels))
        for name in ("sigmaNought", "betaNought", "gamma", "dn"):
            level = gain if name != "dn" else 1.0
            ET.SubElement(vec, name, count=str(pixels.size)).text = " ".join(
                [f"{level:.6e}"] * pixels.size
            )
    return root


def _names(template_name: str, start: np.datetime64, stop: np.datetime64, orbit: int, take: int):
    """Product name and the VV file stem of a product, as ESA builds them."""
    parts = template_name.split("_")
    fmt = "%Y%m%dT%H%M%S"
    import datetime as _dt

    t0 = _dt.datetime.fromisoformat(_iso(start)).strftime(fmt)
    t1 = _dt.datetime.fromisoformat(_iso(stop)).strftime(fmt)
    unique = f"{(orbit * 7919 + take) % 65536:04X}"
    name = "_".join([*parts[:4], t0, t1, f"{orbit:06d}", f"{take:06X}", unique])
    mission = parts[0].lower()
    stem = f"{mission}-iw-grd-vv-{t0.lower()}-{t1.lower()}-{orbit:06d}-{take:06x}-001"
    return name, stem


def _write_product(
    directory: Path,
    template: Path,
    image: np.ndarray,
    l0: float,
    s0: float,
    days: float,
    gain: float,
) -> Path:
    """Write one cropped product holding ``image`` (uint16 DNs)."""
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    from ..io.safe import _Product

    source = _Product(str(template))
    annotation = source.find("annotation", "VV")
    if annotation is None:
        raise InvalidParameterError(f"the template {str(template)!r} has no VV annotation")
    ann = source.xml(annotation)
    manifest = source.read("manifest.safe").decode("utf-8")
    old_name = source.name
    old_stem = posixpath_stem(annotation)
    source.close()

    old_start = _time(ann.findtext("adsHeader/startTime", ""))
    old_stop = _time(ann.findtext("adsHeader/stopTime", ""))
    orbit0 = int(ann.findtext("adsHeader/absoluteOrbitNumber", "0"))
    take0 = int(ann.findtext("adsHeader/missionDataTakeId", "0"))
    ann = _crop_annotation(ann, l0, s0, image.shape, days)
    start = _time(ann.findtext("adsHeader/startTime", ""))
    stop = _time(ann.findtext("adsHeader/stopTime", ""))
    orbit = orbit0 + int(round(days * _ORBITS_PER_DAY))
    take = take0 + int(round(days * 97))
    _set(ann, "adsHeader/absoluteOrbitNumber", str(orbit))
    _set(ann, "adsHeader/missionDataTakeId", str(take))
    name, stem = _names(old_name, start, stop, orbit, take)

    product = directory / f"{name}.SAFE"
    if product.exists():
        shutil.rmtree(product)
    (product / "annotation" / "calibration").mkdir(parents=True)
    (product / "measurement").mkdir()
    ET.ElementTree(ann).write(product / "annotation" / f"{stem}.xml", xml_declaration=True)
    cal = _calibration_xml(ann, image.shape, gain)
    ET.ElementTree(cal).write(
        product / "annotation" / "calibration" / f"calibration-{stem}.xml", xml_declaration=True
    )

    # manifest: the template's, with this product's names, times and orbit
    text = manifest.replace(old_stem, stem).replace(old_name, name)
    text = re.sub(
        r"<safe:startTime>[^<]*</safe:startTime>",
        f"<safe:startTime>{_iso(start)}</safe:startTime>",
        text,
    )
    text = re.sub(
        r"<safe:stopTime>[^<]*</safe:stopTime>",
        f"<safe:stopTime>{_iso(stop)}</safe:stopTime>",
        text,
    )
    text = re.sub(
        r'(<safe:orbitNumber type="(?:start|stop)">)\d+(</safe:orbitNumber>)',
        rf"\g<1>{orbit}\g<2>",
        text,
    )
    text = text.replace(f">{take0}<", f">{take}<")
    for old, new in ((old_start, start), (old_stop, stop)):
        compact_old = _iso(old)[:19].replace("-", "").replace(":", "").lower()
        compact_new = _iso(new)[:19].replace("-", "").replace(":", "").lower()
        text = text.replace(compact_old, compact_new)
    (product / "manifest.safe").write_text(text, encoding="utf-8")

    gcps = [
        GroundControlPoint(
            row=float(p.findtext("line", "nan")),
            col=float(p.findtext("pixel", "nan")),
            x=float(p.findtext("longitude", "nan")),
            y=float(p.findtext("latitude", "nan")),
            z=float(p.findtext("height", "nan")),
            id=str(k + 1),
        )
        for k, p in enumerate(ann.iter("geolocationGridPoint"))
    ]
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        _write_tiff(product / "measurement" / f"{stem}.tiff", image, gcps, CRS.from_epsg(4326))
    return product


def _write_tiff(path: Path, image: np.ndarray, gcps: list[Any], crs: Any) -> None:
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=image.shape[1],
        height=image.shape[0],
        count=1,
        dtype="uint16",
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    ) as dst:
        dst.gcps = (gcps, crs)
        dst.write(image, 1)


def posixpath_stem(name: str) -> str:
    """File name without folder and extension (``annotation/x-001.xml`` -> ``x-001``)."""
    return os.path.splitext(name.rsplit("/", 1)[-1])[0]


def _to_dn(amplitude: np.ndarray, level: float) -> np.ndarray:
    return np.clip(np.round(amplitude * level), 1, 65535).astype(np.uint16)


def make_safe_pair(
    directory: str | os.PathLike[str],
    template: str | os.PathLike[str],
    *,
    shape: tuple[int, int] = (1024, 1024),
    origin: tuple[int, int] = (7000, 12000),
    shift: tuple[float, float] = (23.4, -6.7),
    annotation_error: tuple[float, float] = (1.6, -0.7),
    days: float = 12.0,
    max_displacement: float = 8.0,
    field: str = "glacier",
    looks: float = 4.0,
    seed: int = 0,
) -> SafePair:
    """Write a reference and a secondary GRD product with known motion into ``directory``.

    Parameters
    ----------
    directory : path
        Where the two ``.SAFE`` folders go (replaced if they exist).
    template : path
        A Sentinel-1 GRD product (``.SAFE`` or ``.zip``) whose layout,
        annotation and geometry are copied (its pixels are not read).
    shape : (int, int)
        Lines and samples of each product.
    origin : (int, int)
        ``(l0, s0)``: the reference window in the template's pixels.
    shift : (float, float)
        How many lines later (azimuth time intervals) and samples further in
        range the secondary's window starts, recorded in its annotation.
    annotation_error : (float, float)
        An extra image offset (pixels) the annotation does not record.
    days : float
        Time between the acquisitions (an exact repeat pass).
    max_displacement : float
        Largest motion (pixels). ``field="uniform"`` moves everything by
        ``max_displacement`` along ``+x`` (ground range) instead.
    field : {"glacier", "uniform"}
    looks : float
        Speckle looks.
    seed : int

    Returns
    -------
    SafePair

    Raises
    ------
    InvalidParameterError
        A window outside the template, or an unknown ``field``.
    """
    from ..io.safe import safe_metadata

    if field not in ("glacier", "uniform"):
        raise InvalidParameterError(f"field={field!r} is not known; use 'glacier' or 'uniform'")
    meta = safe_metadata(template)
    rows, cols = int(shape[0]), int(shape[1])
    l0, s0 = int(origin[0]), int(origin[1])
    k, m = float(shift[0]), float(shift[1])
    ey, ex = float(annotation_error[0]), float(annotation_error[1])
    total = meta["number_of_lines"], meta["number_of_samples"]
    for lo, size, n, what in ((l0, rows, total[0], "lines"), (s0, cols, total[1], "samples")):
        reach = abs(k if what == "lines" else m) + 1
        if lo - reach < 0 or lo + size + reach > n or size < 64:
            raise InvalidParameterError(
                f"the window {lo}..{lo + size} (+/- {reach:.0f}) leaves the template's "
                f"{n} {what} or is under 64; pick origin= and shape= inside it"
            )
    rng = np.random.default_rng(seed)
    pad = int(np.ceil(max(abs(k - ey), abs(m - ex)) + max_displacement)) + 16
    world_shape = (rows + 2 * pad, cols + 2 * pad)
    texture = fractal_texture(world_shape, seed=rng)
    if field == "glacier":
        dy_w, dx_w = glacier_field(world_shape, max_displacement=max_displacement, seed=rng)
    else:
        dy_w, dx_w = np.zeros(world_shape), np.full(world_shape, float(max_displacement))
    # secondary pixel p sees the world at p + (k, m) - error; the ground moved by d
    moved = warp(texture, dy_w - (k - ey), dx_w - (m - ex))
    window = (slice(pad, pad + rows), slice(pad, pad + cols))
    level = 180.0
    ref_img = _to_dn(np.sqrt(speckle(texture[window], looks, rng)), level)
    sec_img = _to_dn(np.sqrt(speckle(np.clip(moved[window], 1e-6, None), looks, rng)), level)

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    gain = 400.0
    ref = _write_product(out, Path(template), ref_img, l0, s0, 0.0, gain)
    sec = _write_product(out, Path(template), sec_img, l0 + k, s0 + m, days, gain)
    # the time between the same ground line is ``days``; the first lines differ by k lines more
    coords = {"y": np.arange(rows, dtype=np.float64), "x": np.arange(cols, dtype=np.float64)}
    global_offset = (-k + ey, -m + ex)
    truth = xr.Dataset(
        {
            "dy": (("y", "x"), dy_w[window].astype(np.float32)),
            "dx": (("y", "x"), dx_w[window].astype(np.float32)),
        },
        coords=coords,
        attrs={
            "global_dy": global_offset[0],
            "global_dx": global_offset[1],
            "days": float(days),
            "range_pixel_spacing": float(meta["range_pixel_spacing"]),
            "azimuth_pixel_spacing": float(meta["azimuth_pixel_spacing"]),
        },
    )
    return SafePair(
        ref=ref,
        sec=sec,
        truth=truth,
        global_offset=global_offset,
        annotation_offset=(-k, -m),
        days=float(days),
        origin=(l0, s0),
    )
