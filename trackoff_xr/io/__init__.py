"""Reading and writing: rasters, Sentinel-1 products, ASF search, and the output formats.

* :mod:`.raster` -- :func:`open_image`, any raster GDAL reads, local or remote;
* :mod:`.safe` -- :func:`open_safe`, Sentinel-1 GRD ``.SAFE`` products;
* :mod:`.asf` -- searching and downloading Sentinel-1 scenes from ASF;
* :mod:`.safety` -- :func:`check_output`, :func:`remove_partials`: the rule below;
* :mod:`.zarr`, :mod:`.netcdf`, :mod:`.geotiff`, :mod:`.csv`, :mod:`.files` -- the writers;
* :mod:`.its_live` -- the ITS_LIVE output profile (``profile="its_live"``).

Writers
-------
Writing offsets and velocities: Zarr (ITS_LIVE-style), GeoTIFF/COG and TrackOff CSV.

* :func:`to_zarr` writes one pair to a Zarr store (a local directory or any
  fsspec URL: ``s3://``, ``gs://``, ``memory://``, ...) with CF-1.8 and
  ITS_LIVE-compatible names: ``vx``, ``vy``, ``v`` in ``meter/year`` with
  their standard names, ``grid_mapping``, ``date_center``, ``date_dt``,
  ``acquisition_date_img1``/``acquisition_date_img2``, the processing
  parameters and the software version.
* :func:`append_pair` stacks pairs into one store along ``mid_date``, as the
  ITS_LIVE data cubes do.
* :func:`open_zarr` opens a store written here and refuses one whose write
  did not finish.
* :func:`to_netcdf` writes one pair to a CF-1.8 netCDF-4 file (checked with
  cfchecks and compliance-checker); ``profile="its_live"`` on it and on
  :func:`to_zarr` writes the layout of ITS_LIVE granules.
* :func:`to_geotiff` writes one Cloud Optimized GeoTIFF per variable, and
  :func:`to_csv` the point table of the original TrackOff scripts.

Outputs never destroy anything
------------------------------
Every writer follows one rule, checked by :func:`check_output` before anything
is computed: it replaces only what trackoff_xr itself wrote, and only when
asked (``mode="w"``). ``mode="w-"`` (the default) refuses any existing target.
Whatever the mode, a writer never replaces

* a plain folder or a file trackoff_xr did not write. Ours are: a Zarr store
  whose root attributes hold ``trackoff_write_complete`` (complete or
  interrupted), a netCDF file whose global attributes hold
  ``trackoff_netcdf_writer``, a CSV whose header is exactly :data:`CSV_COLUMNS`, a GeoTIFF
  carrying the ``TRACKOFF_XR_WRITER`` tag, a PNG figure whose ``Software``
  text names trackoff_xr (:func:`save_figure`), a search table whose header
  is one of :data:`TABLE_COLUMNS` (:func:`write_table`), CNN weights whose
  JSON holds ``"software": "trackoff_xr"`` (:func:`save_weights`);
* a path passed in ``protect`` (the run's inputs, and the
  ``reference_image``/``secondary_image`` attributes of the Dataset), nor a
  folder holding one, compared after resolving symbolic links and relative
  paths.

Local outputs are written to a hidden sibling ``.<name>.<pid>.<random>.partial``
and renamed into place only once complete, so an interrupted write never leaves
anything that looks complete; the partial is removed on any exception
(``KeyboardInterrupt`` included), and the next write to the same target removes
partials left by processes that no longer run (:func:`remove_partials`). Every
store gets ``trackoff_write_complete = 1`` last, and :func:`open_zarr` checks
it. Stores are Zarr format 2 with consolidated metadata, readable by
zarr-python 2 and 3 and by ``xr.open_zarr``; their attributes can be written to
netCDF as they are.
"""

from ..exceptions import IncompleteStoreError, OutputExistsError
from .asf import (
    Credentials,
    download,
    find_pairs,
    resolve_credentials,
    scenes_from_geojson,
    search_scenes,
)
from .csv import to_csv
from .files import save_figure, save_weights, write_table, write_weights_meta
from .geotiff import to_geotiff
from .netcdf import to_netcdf
from .raster import open_image
from .safe import check_s1_pair, open_safe, safe_metadata
from .safety import (
    COMPLETE_ATTR,
    CSV_COLUMNS,
    SOFTWARE,
    TABLE_COLUMNS,
    TIFF_TAG,
    check_output,
    remove_partials,
    weights_json,
)
from .zarr import append_pair, open_zarr, prepare_dataset, to_zarr

__all__ = [
    "COMPLETE_ATTR",
    "CSV_COLUMNS",
    "SOFTWARE",
    "TABLE_COLUMNS",
    "TIFF_TAG",
    "Credentials",
    "IncompleteStoreError",
    "OutputExistsError",
    "append_pair",
    "check_output",
    "check_s1_pair",
    "download",
    "find_pairs",
    "open_image",
    "open_safe",
    "open_zarr",
    "prepare_dataset",
    "remove_partials",
    "resolve_credentials",
    "safe_metadata",
    "save_figure",
    "save_weights",
    "scenes_from_geojson",
    "search_scenes",
    "to_csv",
    "to_geotiff",
    "to_netcdf",
    "to_zarr",
    "weights_json",
    "write_table",
    "write_weights_meta",
]
