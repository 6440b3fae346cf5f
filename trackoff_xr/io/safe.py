"""Sentinel-1 GRD products (``.SAFE`` folders or their ``.zip``) as lazy images.

:func:`open_safe` returns the measurement GeoTIFF of one polarisation as a
lazy float32 ``(y, x)`` DataArray in radar geometry (rows = azimuth lines,
columns = ground-range pixels, coordinates are pixel indices ``0 .. N-1``),
with the product's metadata as attributes and the annotation's geolocation
grid as rioxarray ground control points (``image.rio.get_gcps()``), so that
``image.rio.reproject("EPSG:3413")`` can map it.

Why parse the XML here instead of using xarray-sentinel
---------------------------------------------------------
Both were measured on the shared product
(``S1B_IW_GRDH_1SDV_20210401T052623_..._ECC8.SAFE``, 16,685 x 25,788 pixels,
1.7 MB annotation XML), on the 2-core development machine:

============================  ================  ====================
step                          xarray-sentinel   this module
============================  ================  ====================
import                        1.0 s             (rioxarray: already
                                                loaded by trackoff_xr)
open VV image + metadata      2.2 s first,      0.06 s first,
                              0.8-1.8 s again   0.04 s again
default chunks                (1, 25788):       (2048, 2048), as
                              16,685 tasks      :func:`open_image`
ground control points         separate group    on the image
                              (``IW/VV/gcp``,
                              another 0.3 s)
============================  ================  ====================

Both open lazily (no pixel is read). xarray-sentinel builds a full
``azimuth_time``/``ground_range`` dataset model (times per line, orbit,
attitude, ...) that we do not need for feature tracking, and its dims would
have to be renamed to ``(y, x)`` and its chunks redone. Reading the few
fields we need with :mod:`xml.etree.ElementTree` takes about 20 ms, keeps
the result identical in form to :func:`trackoff_xr.open_image` (dims,
coordinates, chunks, float32), adds no dependency, and works inside ``.zip``
archives through GDAL's ``/vsizip/``. xarray-sentinel stays the better tool
for SLC bursts and full annotation access.

Calibration: ``"amplitude"`` returns the digital numbers (GRD DNs are
amplitudes); ``"sigma0"`` divides their square by the squared
``sigmaNought`` look-up table of ``annotation/calibration/calibration-*.xml``
(bilinear between LUT points, as ESA specifies); ``"sigma0_db"`` is
``10 log10`` of that. Thermal noise is not removed. DN 0 marks the no-data
border of GRD scenes and becomes NaN.
"""

from __future__ import annotations

import os
import posixpath
import warnings
import xml.etree.ElementTree as ET
import zipfile
from typing import Any

import numpy as np
import xarray as xr

from ..exceptions import (  # noqa: F401  (re-exported)
    CalibrationNotAvailableError,
    GridMismatchError,
    ImageReadError,
    InvalidParameterError,
    NotASafeProductError,
    PolarisationError,
    PolarisationMismatchWarning,
    TrackOffError,
)

__all__ = [
    "CalibrationNotAvailableError",
    "NotASafeProductError",
    "PolarisationError",
    "PolarisationMismatchWarning",
    "check_s1_pair",
    "open_safe",
    "safe_metadata",
]

CALIBRATIONS = ("amplitude", "sigma0", "sigma0_db")


class _Product:
    """Uniform access to the files of a ``.SAFE`` folder or a ``.zip`` of one."""

    def __init__(self, path: str):
        self.path = path
        self.is_zip = path.lower().endswith(".zip")
        if self.is_zip:
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise NotASafeProductError(
                    f"{path!r} is not a readable zip archive ({exc}); pass a Sentinel-1 "
                    ".SAFE folder or the .zip downloaded from ASF/Copernicus"
                ) from exc
            manifests = [n for n in self._zip.namelist() if n.endswith("manifest.safe")]
            if not manifests:
                raise NotASafeProductError(
                    f"{path!r} holds no manifest.safe, so it is not a zipped Sentinel-1 "
                    "product; pass the .zip of a .SAFE folder"
                )
            self.root = posixpath.dirname(min(manifests, key=len))
            self.names = [
                n[len(self.root) + 1 :] if self.root else n
                for n in self._zip.namelist()
                if n.startswith(self.root) and not n.endswith("/")
            ]
        else:
            if not os.path.isfile(os.path.join(path, "manifest.safe")):
                raise NotASafeProductError(
                    f"{path!r} has no manifest.safe, so it is not a Sentinel-1 .SAFE "
                    "folder; pass the product folder (…SAFE) or its .zip"
                )
            self.root = path
            self.names = [
                os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
                for d, _, files in os.walk(path)
                for f in files
            ]
        self.name = os.path.basename((self.root if self.root else path).rstrip("/\\"))
        for ext in (".zip", ".safe"):
            if self.name.lower().endswith(ext):
                self.name = self.name[: -len(ext)]

    def read(self, name: str) -> bytes:
        if self.is_zip:
            member = f"{self.root}/{name}" if self.root else name
            return self._zip.read(member)
        with open(os.path.join(self.root, name), "rb") as f:
            return f.read()

    def xml(self, name: str) -> ET.Element:
        try:
            return ET.fromstring(self.read(name))
        except ET.ParseError as exc:
            raise ImageReadError(
                f"{name!r} in {self.path!r} is not valid XML ({exc}); the product may be "
                "damaged: download it again"
            ) from exc

    def gdal_path(self, name: str) -> str:
        if self.is_zip:
            member = f"{self.root}/{name}" if self.root else name
            return f"/vsizip/{os.path.abspath(self.path)}/{member}"
        return os.path.join(self.root, name)

    def find(self, folder: str, polarisation: str, prefix: str = "") -> str | None:
        tag = f"-{polarisation.lower()}-"
        for name in sorted(self.names):
            head, base = posixpath.split(name)
            if head == folder and base.startswith(prefix) and tag in base.lower():
                return name
        return None

    def close(self) -> None:
        if self.is_zip:
            self._zip.close()


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    return None if node is None or node.text is None else node.text.strip()


def _manifest_metadata(manifest: ET.Element) -> dict[str, Any]:
    def first(tag: str, **attrs: str) -> str | None:
        for node in manifest.iterfind(f".//{{*}}{tag}"):
            if all(node.get(k) == v for k, v in attrs.items()) and node.text:
                return node.text.strip()
        return None

    polarisations = [
        n.text.strip() for n in manifest.iterfind(".//{*}transmitterReceiverPolarisation") if n.text
    ]
    meta: dict[str, Any] = {
        "relative_orbit": first("relativeOrbitNumber", type="start"),
        "absolute_orbit": first("orbitNumber", type="start"),
        "pass_direction": first("pass"),
        "product_polarisations": " ".join(polarisations),
        "slice_number": first("sliceNumber"),
        "mission_data_take_id": first("missionDataTakeID"),
    }
    for key in ("relative_orbit", "absolute_orbit", "slice_number", "mission_data_take_id"):
        if meta[key] is not None:
            meta[key] = int(meta[key])
    if meta["pass_direction"]:
        meta["pass_direction"] = meta["pass_direction"].upper()
    return {k: v for k, v in meta.items() if v is not None}


def _annotation_metadata(ann: ET.Element) -> dict[str, Any]:
    mission = _text(ann, "adsHeader/missionId") or ""
    info = "imageAnnotation/imageInformation/"
    meta: dict[str, Any] = {
        "mission": mission,
        "platform": f"Sentinel-{mission[1:]}" if mission.startswith("S1") else mission,
        "product_type": _text(ann, "adsHeader/productType"),
        "mode": _text(ann, "adsHeader/mode"),
        "polarisation": _text(ann, "adsHeader/polarisation"),
        "first_line_time": _text(ann, info + "productFirstLineUtcTime"),
        "last_line_time": _text(ann, info + "productLastLineUtcTime"),
        "range_pixel_spacing": _text(ann, info + "rangePixelSpacing"),
        "azimuth_pixel_spacing": _text(ann, info + "azimuthPixelSpacing"),
        "azimuth_time_interval": _text(ann, info + "azimuthTimeInterval"),
        "ascending_node_time": _text(ann, info + "ascendingNodeTime"),
        "slant_range_time": _text(ann, info + "slantRangeTime"),
        "incidence_angle_mid_swath": _text(ann, info + "incidenceAngleMidSwath"),
        "number_of_lines": _text(ann, info + "numberOfLines"),
        "number_of_samples": _text(ann, info + "numberOfSamples"),
        "projection": _text(ann, "generalAnnotation/productInformation/projection"),
        "platform_heading": _text(ann, "generalAnnotation/productInformation/platformHeading"),
        "radar_frequency": _text(ann, "generalAnnotation/productInformation/radarFrequency"),
        "absolute_orbit": _text(ann, "adsHeader/absoluteOrbitNumber"),
        "pass_direction": _text(ann, "generalAnnotation/productInformation/pass"),
    }
    for key in (
        "range_pixel_spacing",
        "azimuth_pixel_spacing",
        "azimuth_time_interval",
        "slant_range_time",
        "incidence_angle_mid_swath",
        "platform_heading",
        "radar_frequency",
    ):
        if meta[key] is not None:
            meta[key] = float(meta[key])
    for key in ("number_of_lines", "number_of_samples", "absolute_orbit"):
        if meta[key] is not None:
            meta[key] = int(meta[key])
    if meta["pass_direction"]:
        meta["pass_direction"] = meta["pass_direction"].upper()
    near = _near_range_incidence(ann)
    if near is not None:
        meta["incidence_angle_near_range"] = near
    return {k: v for k, v in meta.items() if v is not None}


def _near_range_incidence(ann: ET.Element) -> float | None:
    """Mean incidence angle (degrees) of the geolocation grid's first pixel column."""
    angles = [
        float(_text(node, "incidenceAngle") or "nan")
        for node in ann.iter("geolocationGridPoint")
        if (_text(node, "pixel") or "").strip() == "0"
    ]
    angles = [a for a in angles if np.isfinite(a)]
    return float(np.mean(angles)) if angles else None


def _gcps(ann: ET.Element) -> list[Any]:
    from rasterio.control import GroundControlPoint

    points = []
    for k, node in enumerate(ann.iter("geolocationGridPoint")):
        points.append(
            GroundControlPoint(
                row=float(_text(node, "line") or "nan"),
                col=float(_text(node, "pixel") or "nan"),
                x=float(_text(node, "longitude") or "nan"),
                y=float(_text(node, "latitude") or "nan"),
                z=float(_text(node, "height") or "nan"),
                id=str(k + 1),
            )
        )
    return points


def _check_polarisation(polarisation: Any) -> str:
    if not isinstance(polarisation, str) or polarisation.upper() not in ("VV", "VH", "HH", "HV"):
        raise PolarisationError(
            f"polarisation={polarisation!r} is not a Sentinel-1 polarisation; use one of "
            "'VV', 'VH', 'HH', 'HV'"
        )
    return polarisation.upper()


def _available(product: _Product) -> list[str]:
    found = []
    for pol in ("VV", "VH", "HH", "HV"):
        if product.find("measurement", pol) is not None:
            found.append(pol)
    return found


def _read_metadata(product: _Product, polarisation: str) -> tuple[dict[str, Any], ET.Element]:
    annotation = product.find("annotation", polarisation)
    if annotation is None:
        raise PolarisationError(
            f"{product.path!r} has no {polarisation} annotation; it has measurements for "
            f"{_available(product) or 'no polarisation'}: pass polarisation= one of those"
        )
    ann = product.xml(annotation)
    meta = _annotation_metadata(ann)
    meta.update(_manifest_metadata(product.xml("manifest.safe")))
    meta["product_name"] = product.name
    meta["acquisition_start"] = meta.get("first_line_time")
    meta["acquisition_stop"] = meta.get("last_line_time")
    meta["geometry"] = "radar"
    return {k: v for k, v in meta.items() if v is not None}, ann


def _resolve(path: str | os.PathLike[str]) -> str:
    path_str = os.fspath(path)
    if "://" in path_str:
        raise NotASafeProductError(
            f"{path_str!r} is a URL; download the product first (trackoff_xr.io.asf.download) "
            "and pass the local .SAFE folder or .zip"
        )
    if not os.path.exists(path_str):
        raise ImageReadError(
            f"no Sentinel-1 product at {path_str!r}; check the path (relative paths are "
            f"taken from {os.getcwd()!r})"
        )
    if os.path.isfile(path_str) and os.path.basename(path_str) == "manifest.safe":
        path_str = os.path.dirname(path_str) or "."
    return path_str


def safe_metadata(path: str | os.PathLike[str], polarisation: str = "VV") -> dict[str, Any]:
    """Read the metadata of a Sentinel-1 product without touching its pixels.

    Parameters
    ----------
    path : str or path-like
        A ``.SAFE`` folder, its ``manifest.safe``, or a ``.zip`` of it.
    polarisation : {"VV", "VH", "HH", "HV"}, default "VV"

    Returns
    -------
    dict
        The attributes :func:`open_safe` puts on the image (without ``source``
        and ``calibration``).

    Examples
    --------
    >>> import glob
    >>> safe = glob.glob("../shared/data/s1_grd/*.SAFE")[0]   # the shared sample product
    >>> meta = safe_metadata(safe)
    >>> meta["relative_orbit"], meta["pass_direction"]
    (168, 'DESCENDING')
    """
    product = _Product(_resolve(path))
    try:
        meta, _ = _read_metadata(product, _check_polarisation(polarisation))
    finally:
        product.close()
    return meta


def open_safe(
    path: str | os.PathLike[str],
    polarisation: str = "VV",
    chunks: Any = 2048,
    calibration: str = "amplitude",
) -> xr.DataArray:
    """Open one polarisation of a Sentinel-1 GRD product as a lazy ``(y, x)`` image.

    Parameters
    ----------
    path : str or path-like
        A ``.SAFE`` folder, its ``manifest.safe``, or a ``.zip`` of it.
    polarisation : {"VV", "VH", "HH", "HV"}, default "VV"
        Which measurement to open.
    chunks : int, tuple, dict or "auto", default 2048
        Dask chunks for the pixels; ``None`` reads eagerly into numpy.
    calibration : {"amplitude", "sigma0", "sigma0_db"}, default "amplitude"
        ``"amplitude"``: the digital numbers; ``"sigma0"``: backscatter
        coefficient (linear) from the product's calibration LUT;
        ``"sigma0_db"``: the same in decibels.

    Returns
    -------
    xarray.DataArray
        Float32, dims ``(y, x)`` with pixel-index coordinates; DN 0 (no-data
        border) is NaN. Attributes: ``mission``, ``platform``,
        ``polarisation``, ``relative_orbit``, ``absolute_orbit``,
        ``pass_direction``, ``range_pixel_spacing`` and
        ``azimuth_pixel_spacing`` (metres), ``first_line_time``,
        ``last_line_time`` (= ``acquisition_start``/``acquisition_stop``, UTC,
        ISO 8601), ``azimuth_time_interval`` (s), ``ascending_node_time``,
        ``slant_range_time`` (near range, s), ``incidence_angle_near_range``
        and ``incidence_angle_mid_swath`` (degrees; what
        :func:`trackoff_xr.coregister.coregister` reads), ``geometry="radar"``,
        ``calibration``, ... The geolocation
        grid is kept as ground control points in ``spatial_ref``
        (``image.rio.get_gcps()``, EPSG:4326).

    Raises
    ------
    ImageReadError
        Missing path (``NotASafeProductError`` if it is not a SAFE product).
    PolarisationError
        Unknown polarisation, or none of its measurement in the product.
    CalibrationNotAvailableError
        ``"sigma0"``/``"sigma0_db"`` asked for but the product has no
        calibration LUT.

    Examples
    --------
    >>> import glob
    >>> img = open_safe(glob.glob("../shared/data/s1_grd/*.SAFE")[0])   # lazy
    >>> img.shape, img.attrs["range_pixel_spacing"]
    ((16685, 25788), 10.0)
    """
    import rioxarray

    from ..chunks import raster_chunks as _raster_chunks

    if calibration not in CALIBRATIONS:
        raise InvalidParameterError(
            f"calibration={calibration!r} is not known; use one of {CALIBRATIONS}"
        )
    polarisation = _check_polarisation(polarisation)
    path_str = _resolve(path)
    product = _Product(path_str)
    try:
        meta, ann = _read_metadata(product, polarisation)
        measurement = product.find("measurement", polarisation)
        if measurement is None:
            raise PolarisationError(
                f"{path_str!r} has no {polarisation} measurement file; it has "
                f"{_available(product) or 'none'}: pass polarisation= one of those"
            )
        lut = None
        if calibration != "amplitude":
            lut = _calibration_lut(product, polarisation, calibration)
        gdal_path = product.gdal_path(measurement)
    finally:
        product.close()

    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            raw = rioxarray.open_rasterio(gdal_path, chunks=_raster_chunks(chunks), lock=False)
    except (RasterioIOError, OSError, ValueError) as exc:
        raise ImageReadError(
            f"could not read the measurement {gdal_path!r} ({exc}); the product may be "
            "incomplete: download it again"
        ) from exc
    if not isinstance(raw, xr.DataArray) or raw.sizes.get("band", 1) != 1:
        raise ImageReadError(f"{gdal_path!r} is not a single-band image; is it a GRD product?")
    dn = raw.isel(band=0, drop=True).drop_vars("spatial_ref", errors="ignore")
    image = dn.astype(np.float32)
    image = image.where(image != 0)
    if lut is not None:
        image = _apply_calibration(image, lut, calibration)
    image = image.assign_coords(
        y=np.arange(image.sizes["y"], dtype=np.float64),
        x=np.arange(image.sizes["x"], dtype=np.float64),
    )
    image = image.rio.write_gcps(_gcps(ann), "EPSG:4326")
    image.attrs = dict(meta)
    image.attrs["calibration"] = calibration
    image.attrs["units"] = {"amplitude": "1", "sigma0": "1", "sigma0_db": "dB"}[calibration]
    image.attrs["source"] = path_str
    image.name = f"{meta.get('product_name', 'S1')}_{polarisation}"
    return image


def _calibration_lut(product: _Product, polarisation: str, calibration: str) -> Any:
    name = product.find("annotation/calibration", polarisation, prefix="calibration-")
    if name is None:
        raise CalibrationNotAvailableError(
            f"calibration={calibration!r} needs the sigma0 look-up table "
            f"(annotation/calibration/calibration-*-{polarisation.lower()}-*.xml), but "
            f"{product.path!r} has none; use calibration='amplitude', or download the "
            "complete product"
        )
    root = product.xml(name)
    lines, pixels, values = [], None, []
    for vector in root.iter("calibrationVector"):
        line = float(_text(vector, "line") or "nan")
        pix = np.array((_text(vector, "pixel") or "").split(), dtype=np.float64)
        sig = np.array((_text(vector, "sigmaNought") or "").split(), dtype=np.float64)
        if pix.size == 0 or pix.size != sig.size:
            raise CalibrationNotAvailableError(
                f"{name!r} in {product.path!r} has a calibration vector without matching "
                "pixel and sigmaNought lists; the product may be damaged: download it again"
            )
        if pixels is None:
            pixels = pix
        elif not np.array_equal(pix, pixels):
            sig = np.interp(pixels, pix, sig)
        lines.append(line)
        values.append(sig)
    if pixels is None or len(lines) < 2 or pixels.size < 2:
        raise CalibrationNotAvailableError(
            f"{name!r} in {product.path!r} has fewer than 2 x 2 calibration points; use "
            "calibration='amplitude'"
        )
    order = np.argsort(lines)
    return np.asarray(lines)[order], pixels, np.asarray(values)[order]


def _calibrate_block(
    block: np.ndarray,
    lines: np.ndarray,
    pixels: np.ndarray,
    values: np.ndarray,
    mode: str,
    block_info: Any = None,
) -> np.ndarray:
    from scipy.interpolate import RegularGridInterpolator

    if block_info is not None:
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
    else:
        r0, r1, c0, c1 = 0, block.shape[0], 0, block.shape[1]
    interp = RegularGridInterpolator((lines, pixels), values, bounds_error=False, fill_value=None)
    rows = np.arange(r0, r1, dtype=np.float64)
    cols = np.arange(c0, c1, dtype=np.float64)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    gain = interp(np.stack([rr.ravel(), cc.ravel()], axis=-1)).reshape(rr.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma0 = block.astype(np.float64) ** 2 / gain**2
        if mode == "sigma0_db":
            sigma0 = np.where(sigma0 > 0, 10.0 * np.log10(sigma0), np.nan)
    return sigma0.astype(np.float32)


def _apply_calibration(image: xr.DataArray, lut: Any, mode: str) -> xr.DataArray:
    lines, pixels, values = lut
    data = image.data
    if hasattr(data, "dask"):
        import dask.array as dsa

        out = dsa.map_blocks(
            _calibrate_block,
            data,
            lines,
            pixels,
            values,
            mode,
            dtype=np.float32,
            meta=np.empty((0, 0), dtype=np.float32),
        )
    else:
        out = _calibrate_block(np.asarray(data), lines, pixels, values, mode)
    return image.copy(data=out)


def _attrs_of(item: Any, polarisation: str) -> dict[str, Any]:
    if isinstance(item, xr.DataArray):
        return dict(item.attrs)
    if isinstance(item, dict):
        return item
    return safe_metadata(item, polarisation)


def check_s1_pair(ref: Any, sec: Any, polarisation: str = "VV") -> float:
    """Check that two Sentinel-1 products can be tracked against each other.

    Parameters
    ----------
    ref, sec : xarray.DataArray, dict or path
        Images from :func:`open_safe`, their attributes, or product paths
        (then ``polarisation`` is read).
    polarisation : str, default "VV"
        Used only for paths.

    Returns
    -------
    float
        Days from the start of ``ref`` to the start of ``sec`` (negative if
        ``sec`` is older).

    Raises
    ------
    GridMismatchError
        Different relative orbit (or pass direction): the images do not see
        the ground from the same geometry; pick a pair on one orbit.

    Warns
    -----
    PolarisationMismatchWarning
        Different polarisations: speckle and contrast differ, matches suffer.
    """
    a, b = _attrs_of(ref, polarisation), _attrs_of(sec, polarisation)
    for key in ("relative_orbit", "first_line_time"):
        for name, attrs in (("ref", a), ("sec", b)):
            if key not in attrs:
                raise InvalidParameterError(
                    f"{name} has no {key!r} attribute; open both products with "
                    "trackoff_xr.io.safe.open_safe"
                )
    if a["relative_orbit"] != b["relative_orbit"]:
        raise GridMismatchError(
            f"ref is on relative orbit {a['relative_orbit']} but sec on "
            f"{b['relative_orbit']}; offset tracking needs both images from the same "
            "relative orbit: pick a pair with trackoff_xr.io.asf.find_pairs"
        )
    if a.get("pass_direction") != b.get("pass_direction"):
        raise GridMismatchError(
            f"ref is {a.get('pass_direction')} but sec {b.get('pass_direction')}; pick "
            "two images of the same pass direction and relative orbit"
        )
    if a.get("polarisation") != b.get("polarisation"):
        warnings.warn(
            f"ref is {a.get('polarisation')} but sec {b.get('polarisation')} polarised; "
            "matching works best on one polarisation: open both with the same "
            "polarisation=",
            PolarisationMismatchWarning,
            stacklevel=2,
        )
    start = np.datetime64(a["first_line_time"], "us")
    stop = np.datetime64(b["first_line_time"], "us")
    return float((stop - start) / np.timedelta64(1, "D"))
