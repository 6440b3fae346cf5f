"""The ITS_LIVE output profile: ``to_zarr(..., profile="its_live")``, ``to_netcdf(...)``.

Writes a result in the layout of ITS_LIVE (NASA MEaSUREs Inter-mission Time
Series of Land Ice Velocity and Elevation) image-pair granules, as
``hyp3-autorift`` makes them and the ITS_LIVE data-cube code reads them, by
variable and attribute name:

* ``mapping``: an ``int8`` scalar holding the CF projection attributes plus
  ``spatial_epsg`` (int), ``GeoTransform`` (``"x0 dx 0 y0 0 dy"``,
  centre-based as in granules), ``spatial_ref``/``crs_wkt`` (WKT) and
  ``proj4text``; every 2-D variable has ``grid_mapping="mapping"``.
  UTM grids use ITS_LIVE's ``universal_transverse_mercator`` name and
  ``utm_zone_number``.
* ``img_pair_info``: an ``int8`` scalar whose attributes are the pair
  metadata: ``acquisition_date_img1/2`` and ``date_center`` in
  ``%Y%m%dT%H:%M:%S.%f`` (``date_center`` without trailing zeros),
  ``date_dt`` (days), ``mission_img1/2``, ``satellite_img1/2``,
  ``sensor_img1/2``, ``time_standard_img1/2`` (``UTC``),
  ``roi_valid_percentage``, ``latitude``/``longitude`` of the centre.
  Mission, satellite and sensor come from the Dataset's attributes of those
  names (:func:`its_live_pair_info` makes them from Sentinel-1 images) and
  are ``"unknown"`` otherwise.
* ``vx``, ``vy``, ``v`` (and ``vr``, ``va`` for radar components on a map
  grid, named ``v_range``/``v_azimuth`` by trackoff_xr): ``int16`` with
  ``_FillValue = -32767`` (values clipped to [-32766, 32767] m/yr), zlib
  level 2 with shuffle, ITS_LIVE standard names (``land_ice_surface_velocity``
  for ``v`` is not a CF name: a deviation ITS_LIVE ships).
* ``chip_size_width``/``chip_size_height`` (``uint16``, metres) and
  ``interp_mask`` (``uint8``), which the cube code requires.
* Globals ``autoRIFT_software_version`` and ``autoRIFT_parameter_file``
  (required by the cube code; here ``trackoff_xr <version>`` and a
  ``trackoff_xr:`` string of the matching parameters).

**A year is 365 days in this profile**, as in ITS_LIVE (hyp3-autorift
divides by ``date_dt`` and multiplies by 365). trackoff_xr's default stays
365.25 days (:data:`trackoff_xr.postprocess.velocity.DAYS_PER_YEAR`, the
Julian year, which does not drift against the calendar over leap years);
the profile rescales the velocities by 365/365.25 and records
``days_per_year = 365``.

ITS_LIVE radar products are on **map grids** too (autoRIFT geocodes while it
matches). A trackoff_xr result in radar geometry (the pixel grid of a GRD
image, no map CRS) has no ``mapping.spatial_epsg`` and cannot be ingested:
it is refused with :class:`~trackoff_xr.exceptions.ProfileGeometryError`.
Reproject the images onto a map CRS first (``image.rio.reproject("EPSG:3413")``
uses the GCPs).

The profile is not CF-clean by design (uint8/uint16 types,
``land_ice_surface_velocity``, ``image_pair_information``, ...): the
CF-1.8 checks apply to the default profile.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any, cast

import numpy as np
import xarray as xr

from ..exceptions import (
    InvalidParameterError,
    MissingMetadataError,
    ProfileGeometryError,
)
from ..georef import crs_of, crs_wkt, is_radar_reference, pair_dates

__all__ = [
    "DAYS_PER_YEAR",
    "FILL_VALUE",
    "PROFILES",
    "check_profile",
    "its_live_dataset",
    "its_live_pair_info",
]

#: the output profiles the writers know (``None`` is the CF-1.8 default)
PROFILES = (None, "its_live")

#: days per year of ITS_LIVE velocities
DAYS_PER_YEAR = 365.0

#: ITS_LIVE's no-data value of the int16 velocities
FILL_VALUE = -32767

_DATE = "%Y%m%dT%H:%M:%S.%f"

# trackoff_xr name -> (ITS_LIVE name, standard_name, description)
_VELOCITIES = {
    "vx": ("vx", "land_ice_surface_x_velocity", "velocity component in x direction"),
    "vy": ("vy", "land_ice_surface_y_velocity", "velocity component in y direction"),
    "v": ("v", "land_ice_surface_velocity", "velocity magnitude"),
    "v_range": ("vr", "range_velocity", "velocity in radar range direction"),
    "v_azimuth": ("va", "azimuth_velocity", "velocity in radar azimuth direction"),
}

_PAIR_KEYS = ("mission", "satellite", "sensor")


def check_profile(profile: Any) -> None:
    """Refuse an unknown output profile.

    Examples
    --------
    >>> check_profile("its_live") is None
    True
    >>> check_profile("itslive")
    Traceback (most recent call last):
    ...
    trackoff_xr.exceptions.InvalidParameterError: profile='itslive' is not ...
    """
    if profile not in PROFILES:
        raise InvalidParameterError(
            f"profile={profile!r} is not an output profile; use profile=None (CF-1.8) or "
            "profile='its_live' (ITS_LIVE granule layout)"
        )


def its_live_pair_info(ref: xr.DataArray, sec: xr.DataArray) -> dict[str, Any]:
    """ITS_LIVE ``img_pair_info`` entries read from two Sentinel-1 images' attributes.

    Put them in the result's attributes (``ds.attrs.update(...)``) before
    writing with ``profile="its_live"``.

    Examples
    --------
    >>> a = xr.DataArray(np.zeros((1, 1)), attrs={"mission": "S1A", "absolute_orbit": 52312,
    ...                                            "pass_direction": "Ascending"})
    >>> info = its_live_pair_info(a, a.assign_attrs(mission="S1C"))
    >>> info["mission_img1"], info["satellite_img1"], info["satellite_img2"], info["sensor_img1"]
    ('S', '1A', '1C', 'C')
    """
    info: dict[str, Any] = {}
    for k, image in ((1, ref), (2, sec)):
        mission = str(image.attrs.get("mission") or "")
        if mission.startswith("S1") and len(mission) >= 3:
            info[f"mission_img{k}"] = "S"
            info[f"satellite_img{k}"] = mission[1:]
            info[f"sensor_img{k}"] = "C"
        if image.attrs.get("absolute_orbit") is not None:
            info[f"absolute_orbit_number_img{k}"] = str(image.attrs["absolute_orbit"])
        if image.attrs.get("pass_direction"):
            info[f"flight_direction_img{k}"] = str(image.attrs["pass_direction"]).lower()
        if image.attrs.get("product_id") or image.attrs.get("name"):
            info[f"id_img{k}"] = str(image.attrs.get("product_id") or image.attrs.get("name"))
    return info


def _its_date(value: Any, *, strip: bool = False) -> str:
    stamp = np.datetime64(value, "us").astype(datetime.datetime)
    text = stamp.strftime(_DATE)
    return text.rstrip("0").rstrip(".") if strip else text


def _map_crs(ds: xr.Dataset) -> Any:
    """Return the projected CRS of a map-grid result; raise ProfileGeometryError otherwise."""
    geometry = ds.attrs.get("geometry")
    gm = dict(ds["spatial_ref"].attrs) if "spatial_ref" in ds.variables else {}
    radar = geometry == "radar" or is_radar_reference(gm)
    if radar or not crs_wkt(gm) or geometry == "image":
        what = (
            "radar geometry (the pixel grid of the image, no map CRS)"
            if radar
            else "image geometry (no CRS)"
        )
        raise ProfileGeometryError(
            f"profile='its_live' needs a result on a map grid, but this one is in {what}: "
            "ITS_LIVE products, radar ones included, are on map grids with a mapping "
            "variable (mapping.spatial_epsg) that the ITS_LIVE cubes read. Reproject both "
            "images onto a map CRS before offsets(), e.g. image.rio.reproject('EPSG:3413') "
            "(it uses the GCPs), or write without profile= (CF-1.8)"
        )
    crs = cast(Any, crs_of(gm))  # not None: crs_wkt(gm) is set
    epsg = crs.to_epsg()
    if not crs.is_projected or epsg is None:
        raise ProfileGeometryError(
            f"profile='its_live' needs a projected CRS with an EPSG code (mapping.spatial_epsg); "
            f"this result's CRS is {crs.name!r}. Reproject the images, e.g. to EPSG:3413 "
            "(Greenland), EPSG:3031 (Antarctica) or the local UTM zone"
        )
    return crs


def _mapping_attrs(crs: Any, x: np.ndarray, y: np.ndarray, step: tuple[float, float]) -> dict:
    from ..georef import spatial_ref_variable

    attrs = dict(spatial_ref_variable(crs.to_cf()).attrs)
    attrs.pop("long_name", None)
    wkt = crs.to_wkt()
    with warnings.catch_warnings():  # "you will likely lose projection information": known
        warnings.simplefilter("ignore", UserWarning)
        proj4 = crs.to_proj4()
    if crs.utm_zone:
        attrs["grid_mapping_name"] = "universal_transverse_mercator"  # ITS_LIVE's name, not CF
        attrs["utm_zone_number"] = int(crs.utm_zone[:-1])
    attrs.update(
        spatial_ref=wkt,
        crs_wkt=wkt,
        proj4text=proj4,
        spatial_epsg=int(crs.to_epsg()),
        GeoTransform=f"{float(x[0])!r} {step[0]!r} 0 {float(y[0])!r} 0 {step[1]!r}",
    )
    return attrs


def _grid_step(ds: xr.Dataset, axis: str) -> float:
    values = np.asarray(ds[axis].values, dtype=np.float64)
    if values.size > 1:
        return float(values[1] - values[0])
    size = ds.attrs.get(f"pixel_size_{axis}")
    if size is None or not ds.attrs.get("spacing"):
        raise MissingMetadataError(
            f"cannot tell the grid step along {axis} of a 1-point grid; run velocity() first"
        )
    return float(size) * float(ds.attrs["spacing"])


def _chunks(ny: int, nx: int) -> tuple[int, int]:
    """Granule chunks of ITS_LIVE: bands of ``ceil(8192 / ny) * 128`` full rows."""
    return int(min(np.ceil(8192 / ny) * 128, ny)), int(nx)


def its_live_dataset(ds: xr.Dataset, *, engine: str) -> tuple[xr.Dataset, dict[str, Any]]:
    """Return ``ds`` in ITS_LIVE granule layout and its encoding for ``engine``.

    Parameters
    ----------
    ds : xarray.Dataset
        A velocity result (:func:`trackoff_xr.velocity`) on a map grid.
    engine : {"zarr", "netcdf"}
        The writer the encoding is for.

    Raises
    ------
    ProfileGeometryError
        The result is in radar or image geometry, or its CRS has no EPSG code.
    MissingMetadataError
        No velocities or no acquisition dates (``img_pair_info`` needs them).
    """
    from .._version import __version__

    crs = _map_crs(ds)
    if "vx" not in ds or "vy" not in ds:
        found = [n for n in ("v_range", "v_azimuth") if n in ds]
        if len(found) != 2:
            raise MissingMetadataError(
                "profile='its_live' writes velocities, and this result has none; run "
                "trackoff_xr.velocity() on it first"
            )
    for key in ("acquisition_date_img1", "acquisition_date_img2"):
        if not ds.attrs.get(key):
            raise MissingMetadataError(
                f"profile='its_live' needs the acquisition dates for img_pair_info, and "
                f"{key} is missing; open the images with their dates "
                "(open_image(path, date='2024-02-03')) and run velocity() again"
            )
    x = np.asarray(ds["x"].values, dtype=np.float64)
    y = np.asarray(ds["y"].values, dtype=np.float64)
    step = (_grid_step(ds, "x"), _grid_step(ds, "y"))
    scale = DAYS_PER_YEAR / float(ds.attrs.get("days_per_year", 365.25))

    out = xr.Dataset(
        coords={
            "x": ("x", x, {
                "standard_name": "projection_x_coordinate",
                "description": "x coordinate of projection", "units": "m",
            }),
            "y": ("y", y, {
                "standard_name": "projection_y_coordinate",
                "description": "y coordinate of projection", "units": "m",
            }),
        }
    )  # fmt: skip
    encoding: dict[str, Any] = {"x": {"_FillValue": None}, "y": {"_FillValue": None}}
    cy, cx = _chunks(y.size, x.size)
    if engine == "zarr":
        import numcodecs
        import zarr

        blosc = numcodecs.Blosc("zlib", 2, shuffle=numcodecs.Blosc.SHUFFLE)
        key = "compressor" if int(zarr.__version__.split(".")[0]) < 3 else "compressors"
        packed: dict[str, Any] = {key: blosc if key == "compressor" else (blosc,)}
    else:
        packed = {"zlib": True, "complevel": 2, "shuffle": True, "chunksizes": (cy, cx)}

    names: dict[str, tuple[str, str | None, str]] = dict(_VELOCITIES)
    for name in list(ds.data_vars):
        if not isinstance(name, str) or name in names or not {"y", "x"} <= set(ds[name].dims):
            continue
        if str(ds[name].attrs.get("units")) == "meter/year":  # e.g. per-pixel errors
            its = name.replace("v_range", "vr").replace("v_azimuth", "va")
            names[name] = (its, None, ds[name].attrs.get("long_name", its))
    for name, (its, standard, description) in names.items():
        if name not in ds:
            continue
        values = (ds[name].transpose("y", "x").astype(np.float64) * scale).clip(-32766, 32767)
        attrs = {"description": description, "units": "meter/year", "grid_mapping": "mapping"}
        if standard:
            attrs["standard_name"] = standard
        out[its] = xr.DataArray(values.round().data, dims=("y", "x"), attrs=attrs)
        encoding[its] = {"dtype": "int16", "_FillValue": FILL_VALUE, **packed}

    # a ufunc on a DataArray returns a DataArray (numpy's stubs only know ndarray)
    finite = cast(xr.DataArray, np.isfinite(ds["v"] if "v" in ds else ds["dx"]))
    patch = int(ds.attrs.get("patch_size", 0))
    for axis, which in (("x", "width"), ("y", "height")):
        grid_step = abs(step[0 if axis == "x" else 1]) / float(ds.attrs.get("spacing") or 1)
        size = abs(float(ds.attrs.get(f"pixel_size_{axis}", grid_step)))
        chip = xr.where(finite, float(patch) * size, 0.0).transpose("y", "x")
        out[f"chip_size_{which}"] = xr.DataArray(
            chip.data,
            dims=("y", "x"),
            attrs={
                "description": f"{which} of the search template (chip)",
                "units": "m",
                "grid_mapping": "mapping",
                "chip_size_coordinates": "image projection geometry: width = x, height = y",
                f"{axis}_pixel_size": size,
            },
        )
        encoding[f"chip_size_{which}"] = {"dtype": "uint16", "_FillValue": 0, **packed}
    interp = ds["interp_mask"] if "interp_mask" in ds else xr.zeros_like(finite)
    out["interp_mask"] = xr.DataArray(
        interp.transpose("y", "x").astype(np.uint8).data,
        dims=("y", "x"),
        attrs={
            "standard_name": "interpolated_value_mask",
            "description": "true where values have been interpolated",
            "flag_values": np.array([0, 1], np.uint8),
            "flag_meanings": "measured interpolated",
            "grid_mapping": "mapping",
        },
    )
    encoding["interp_mask"] = {"dtype": "uint8", "_FillValue": 0, **packed}

    out["mapping"] = xr.Variable((), np.int8(-127), _mapping_attrs(crs, x, y, step))
    out["img_pair_info"] = xr.Variable((), np.int8(-127), _pair_info(ds, crs, x, y, finite))
    for name in ("mapping", "img_pair_info"):
        encoding[name] = {"dtype": "int8", "_FillValue": -127}

    method = ds.attrs.get("method", "unknown")
    params = ";".join(
        f"{k}={ds.attrs[k]}" for k in ("method", "patch_size", "spacing", "search_radius")
        if k in ds.attrs
    )  # fmt: skip
    info = out["img_pair_info"].attrs
    out.attrs = {
        "Conventions": "CF-1.8",
        "GDAL_AREA_OR_POINT": "Area",
        "title": "autoRIFT-style ice velocity from an image pair, by trackoff_xr",
        "date_created": datetime.datetime.now(datetime.timezone.utc).strftime("%d-%b-%Y %H:%M:%S"),
        "autoRIFT_software_version": f"trackoff_xr {__version__}",
        "autoRIFT_parameter_file": f"trackoff_xr:{params}",
        "scene_pair_type": "radar" if info["mission_img1"] == "S" else "unknown",
        "satellite": " ".join(sorted({str(info["satellite_img1"]), str(info["satellite_img2"])})),
        "motion_detection_method": f"trackoff_xr {method}",
        "motion_coordinates": "map",
        "author": "trackoff_xr",
        "source": f"trackoff_xr {__version__}",
        "references": "https://its-live.jpl.nasa.gov/",
        "days_per_year": DAYS_PER_YEAR,
        "software": "trackoff_xr",
        "software_version": __version__,
        **{k: ds.attrs[k] for k in ("patch_size", "spacing", "search_radius") if k in ds.attrs},
        "method": method,
    }
    if engine == "zarr":
        out = out.chunk({"y": cy, "x": cx})
    return out, encoding


def _pair_info(
    ds: xr.Dataset, crs: Any, x: np.ndarray, y: np.ndarray, finite: xr.DataArray
) -> dict[str, Any]:
    from pyproj import Transformer

    t1, t2 = ds.attrs["acquisition_date_img1"], ds.attrs["acquisition_date_img2"]
    centre = ds.attrs.get("date_center") or pair_dates(t1, t2)["date_center"]
    dt = ds.attrs.get("date_dt")
    if dt is None:
        dt = pair_dates(t1, t2)["date_dt"]
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(
        float(x.mean()), float(y.mean())
    )
    info: dict[str, Any] = {
        "standard_name": "image_pair_information",
        "acquisition_date_img1": _its_date(t1),
        "acquisition_date_img2": _its_date(t2),
        "date_center": _its_date(centre, strip=True),
        "date_dt": float(dt),
        "time_standard_img1": "UTC",
        "time_standard_img2": "UTC",
        "latitude": round(float(lat), 2),
        "longitude": round(float(lon), 2),
        "roi_valid_percentage": round(100.0 * float(finite.mean()), 1),
    }
    for key in _PAIR_KEYS:
        for k in (1, 2):
            info[f"{key}_img{k}"] = str(ds.attrs.get(f"{key}_img{k}", "unknown"))
    for key in ("id", "absolute_orbit_number", "flight_direction"):
        for k in (1, 2):
            if ds.attrs.get(f"{key}_img{k}") is not None:
                info[f"{key}_img{k}"] = str(ds.attrs[f"{key}_img{k}"])
    return info
