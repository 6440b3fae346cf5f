"""Find and download Sentinel-1 IW GRD pairs from the Alaska Satellite Facility.

* :func:`search_scenes` asks ASF (through ``asf_search``, imported only
  here) for IW GRD-HD scenes over an area and a date range and returns a
  :class:`pandas.DataFrame`, one row per scene.
* :func:`find_pairs` groups scenes of one relative orbit and frame into
  pairs with the time gaps you ask for (6, 12, 24 days, ...).
* :func:`download` fetches the products with Earthdata Login credentials,
  skips files already complete (size and MD5), retries transient failures
  and stops with a clear error on bad credentials.

Credentials come, in this order, from explicit arguments (``token=`` or
``username=``/``password=``), the ``EARTHDATA_TOKEN`` environment variable,
or the ``urs.earthdata.nasa.gov`` entry of ``~/.netrc``. They are never
printed or logged.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import (  # noqa: F401
    AuthenticationError,
    DownloadError,
    InvalidParameterError,
    MethodNotAvailableError,
    MissingCredentialsError,
    NetworkError,
    TrackOffError,
)

__all__ = [
    "AuthenticationError",
    "Credentials",
    "DownloadError",
    "MissingCredentialsError",
    "NetworkError",
    "download",
    "find_pairs",
    "resolve_credentials",
    "scenes_from_geojson",
    "search_scenes",
]

log = logging.getLogger(__name__)

EDL_HOST = "urs.earthdata.nasa.gov"
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def _asf() -> Any:
    try:
        import asf_search
    except ImportError as exc:
        raise MethodNotAvailableError(
            "searching and downloading Sentinel-1 needs asf_search; install it with "
            "`pip install 'trackoff_xr[s1]'` (or `pip install asf_search`)"
        ) from exc
    asf_search.REPORT_ERRORS = False  # never send error reports to ASF from here
    return asf_search


# --------------------------------------------------------------------------- search


def _aoi_wkt(aoi: Any) -> str:
    if isinstance(aoi, str):
        text = aoi.strip()
        if not text.upper().startswith(("POLYGON", "MULTIPOLYGON", "POINT", "LINESTRING")):
            raise InvalidParameterError(
                f"aoi={aoi!r} is not WKT; pass e.g. 'POLYGON((...))' or a bbox "
                "(west, south, east, north) in degrees"
            )
        return text
    if hasattr(aoi, "wkt"):  # shapely geometry
        return str(aoi.wkt)
    if isinstance(aoi, Sequence) and len(aoi) == 4:
        west, south, east, north = (float(v) for v in aoi)
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise InvalidParameterError(
                f"bbox={tuple(aoi)!r} is not (west, south, east, north) in degrees with "
                "west < east and south < north"
            )
        return (
            f"POLYGON(({west} {south},{east} {south},{east} {north},{west} {north},{west} {south}))"
        )
    raise InvalidParameterError(
        f"aoi={aoi!r} is neither WKT nor a bbox; pass 'POLYGON((...))' or (west, south, "
        "east, north)"
    )


def _timestamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def scenes_from_geojson(collection: dict[str, Any]) -> pd.DataFrame:
    """Turn asf_search results (``results.geojson()``) into a table of scenes.

    Parameters
    ----------
    collection : dict
        A GeoJSON FeatureCollection as ``ASFSearchResults.geojson()`` returns.

    Returns
    -------
    pandas.DataFrame
        One row per scene, sorted by time: ``scene``, ``start``, ``stop``
        (UTC, naive), ``relative_orbit``, ``frame``, ``flight_direction``,
        ``polarization``, ``platform``, ``url``, ``file_name``, ``bytes``,
        ``md5sum``, ``geometry`` (WKT).
    """
    rows = []
    for feature in collection.get("features", []):
        p = feature.get("properties", {})
        geometry = feature.get("geometry")
        wkt = None
        if geometry:
            from shapely.geometry import shape

            wkt = shape(geometry).wkt
        rows.append(
            {
                "scene": p.get("sceneName") or p.get("fileID"),
                "start": _timestamp(p.get("startTime")),
                "stop": _timestamp(p.get("stopTime")),
                "relative_orbit": p.get("pathNumber"),
                "frame": p.get("frameNumber"),
                "flight_direction": (p.get("flightDirection") or "").upper(),
                "polarization": p.get("polarization"),
                "platform": p.get("platform"),
                "url": p.get("url"),
                "file_name": p.get("fileName") or (p.get("url") or "").rsplit("/", 1)[-1],
                "bytes": p.get("bytes"),
                "md5sum": p.get("md5sum"),
                "geometry": wkt,
            }
        )
    columns = [
        "scene", "start", "stop", "relative_orbit", "frame", "flight_direction",
        "polarization", "platform", "url", "file_name", "bytes", "md5sum", "geometry",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    if rows:
        table = table.sort_values("start", kind="stable").reset_index(drop=True)
        for col in ("relative_orbit", "frame"):
            table[col] = table[col].astype("Int64")
    return table


def search_scenes(
    aoi: Any,
    start: Any,
    end: Any,
    *,
    max_results: int | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Find Sentinel-1 IW GRD-HD scenes over an area and a date range.

    Parameters
    ----------
    aoi : str, shapely geometry or (west, south, east, north)
        WKT or a bounding box in degrees (EPSG:4326).
    start, end : str or datetime
        Date range (UTC).
    max_results : int, optional
        Stop after this many scenes.
    **options
        More ``asf_search.search`` filters, e.g. ``relativeOrbit=90``,
        ``flightDirection="DESCENDING"``.

    Returns
    -------
    pandas.DataFrame
        As :func:`scenes_from_geojson`.

    Raises
    ------
    NetworkError
        ASF could not be reached or the search stopped early.
    """
    asf = _asf()
    wkt = _aoi_wkt(aoi)
    begin, finish = _timestamp(start), _timestamp(end)
    if finish <= begin:
        raise InvalidParameterError(f"end={end!r} is not after start={start!r}; pass start < end")
    try:
        results = asf.search(
            platform=asf.PLATFORM.SENTINEL1,
            processingLevel=asf.PRODUCT_TYPE.GRD_HD,
            beamMode=asf.BEAMMODE.IW,
            intersectsWith=wkt,
            start=begin.isoformat(),
            end=finish.isoformat(),
            maxResults=max_results,
            **options,
        )
        results.raise_if_incomplete()
    except asf.ASFSearchError as exc:
        raise NetworkError(
            f"the ASF search failed ({type(exc).__name__}: {exc}); check the internet "
            "connection and try again later"
        ) from exc
    except OSError as exc:  # requests' ConnectionError derives from OSError
        raise NetworkError(
            f"could not reach ASF ({type(exc).__name__}); check the internet connection "
            "and try again later"
        ) from exc
    table = scenes_from_geojson(results.geojson())
    log.debug("ASF search found %d scenes", len(table))
    return table


def find_pairs(
    scenes: pd.DataFrame,
    gaps: Iterable[float] = (12,),
    *,
    tolerance_days: float = 1.0,
) -> pd.DataFrame:
    """Pair scenes of the same relative orbit and frame that are ``gaps`` days apart.

    Parameters
    ----------
    scenes : pandas.DataFrame
        From :func:`search_scenes`.
    gaps : iterable of float, default (12,)
        Wanted time gaps in days (Sentinel-1 repeats every 12 days per
        satellite, 6 with two).
    tolerance_days : float, default 1.0
        How far the real gap may be from a wanted one.

    Returns
    -------
    pandas.DataFrame
        One row per pair, earlier scene first: ``reference``, ``secondary``,
        ``ref_start``, ``sec_start``, ``days`` (real gap), ``gap`` (the
        wanted one it matched), ``relative_orbit``, ``frame``,
        ``flight_direction``, ``ref_url``, ``sec_url``, plus ``ref_``/``sec_``
        ``file_name``, ``bytes``, ``md5sum``.

    Examples
    --------
    >>> scenes = pd.DataFrame({
    ...     "scene": ["a", "b", "c"], "relative_orbit": [90, 90, 90], "frame": [7, 7, 7],
    ...     "start": pd.to_datetime(["2024-02-03", "2024-02-15", "2024-02-27"]),
    ...     "flight_direction": "DESCENDING", "url": ["ua", "ub", "uc"]})
    >>> find_pairs(scenes, gaps=(12, 24))[["reference", "secondary", "days"]]
      reference secondary  days
    0         a         b  12.0
    1         a         c  24.0
    2         b         c  12.0
    """
    wanted = [float(g) for g in gaps]
    if not wanted or any(g <= 0 for g in wanted):
        raise InvalidParameterError(f"gaps={tuple(gaps)!r} must be positive days, e.g. (6, 12)")
    missing = {"scene", "start", "relative_orbit", "frame"} - set(scenes.columns)
    if missing:
        raise InvalidParameterError(
            f"scenes lacks the columns {sorted(missing)}; pass the table from search_scenes()"
        )
    extra = [c for c in ("url", "file_name", "bytes", "md5sum") if c in scenes.columns]
    rows = []
    for (orbit, frame), group in scenes.groupby(["relative_orbit", "frame"], sort=True):
        group = group.sort_values("start")
        records = group.to_dict("records")
        for i, ref in enumerate(records):
            for sec in records[i + 1 :]:
                days = (sec["start"] - ref["start"]) / pd.Timedelta(days=1)
                close = [g for g in wanted if abs(days - g) <= tolerance_days]
                if not close:
                    continue
                row = {
                    "reference": ref["scene"],
                    "secondary": sec["scene"],
                    "ref_start": ref["start"],
                    "sec_start": sec["start"],
                    "days": float(days),
                    "gap": min(close, key=lambda g: abs(days - g)),
                    "relative_orbit": orbit,
                    "frame": frame,
                    "flight_direction": ref.get("flight_direction"),
                }
                for col in extra:
                    row[f"ref_{col}"] = ref.get(col)
                    row[f"sec_{col}"] = sec.get(col)
                rows.append(row)
    table = pd.DataFrame(rows)
    if rows:
        table = table.sort_values(["ref_start", "days"], kind="stable").reset_index(drop=True)
    return table


# ------------------------------------------------------------------------ download


@dataclass(frozen=True)
class Credentials:
    """Earthdata Login credentials; the secret never shows in ``repr``/``str``."""

    kind: str  # "token", "password" or "netrc"
    username: str | None = None
    secret: str | None = field(default=None, repr=False)
    source: str = "argument"

    def __str__(self) -> str:
        who = f" for {self.username!r}" if self.username else ""
        return f"Earthdata {self.kind} credentials{who} from {self.source}"


def resolve_credentials(
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    *,
    netrc_file: str | os.PathLike[str] | None = None,
) -> Credentials:
    """Find Earthdata Login credentials: arguments, ``EARTHDATA_TOKEN``, then ``~/.netrc``.

    A token is stripped of surrounding whitespace (a line end copied with it
    from a file would otherwise make an invalid HTTP header); one that is
    empty then counts as not given.

    Raises
    ------
    MissingCredentialsError
        Nothing found; the message says how to provide them.
    AuthenticationError
        A token with control characters inside (e.g. two lines pasted as one).
    """
    token = _clean_token(token, "token=")
    if token:
        return Credentials("token", secret=token)
    if username or password:
        if not (username and password):
            raise MissingCredentialsError(
                "pass both username= and password= (Earthdata Login), or token="
            )
        return Credentials("password", username=username, secret=password)
    env_token = _clean_token(os.environ.get("EARTHDATA_TOKEN"), "EARTHDATA_TOKEN")
    if env_token:
        return Credentials("token", secret=env_token, source="EARTHDATA_TOKEN")
    path = Path(netrc_file) if netrc_file else Path.home() / ".netrc"
    if path.is_file():
        try:
            entry = netrc.netrc(str(path)).authenticators(EDL_HOST)
        except (netrc.NetrcParseError, OSError) as exc:
            raise MissingCredentialsError(
                f"{str(path)!r} could not be read ({type(exc).__name__}); fix it or set "
                "EARTHDATA_TOKEN"
            ) from None
        if entry and entry[0] and entry[2]:
            return Credentials("netrc", username=entry[0], secret=entry[2], source=str(path))
    raise MissingCredentialsError(
        "no Earthdata Login credentials: pass token= (from "
        "https://urs.earthdata.nasa.gov/user_tokens), set the EARTHDATA_TOKEN environment "
        f"variable, or add 'machine {EDL_HOST} login USER password PASS' to ~/.netrc"
    )


def _clean_token(token: str | None, source: str) -> str | None:
    """``token`` without surrounding whitespace; refuse control characters inside it."""
    if token is None:
        return None
    token = str(token).strip()
    bad = next((i for i, c in enumerate(token) if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise AuthenticationError(
            f"the Earthdata Login token from {source} contains a control character "
            f"({token[bad]!r} at position {bad} of {len(token)}), so it cannot be sent; copy "
            "the token again as one line (make a new one at "
            "https://urs.earthdata.nasa.gov/user_tokens if needed)"
        )
    return token


def _make_session(credentials: Credentials) -> Any:
    asf = _asf()
    session = asf.ASFSession()
    try:
        if credentials.kind == "token":
            session.auth_with_token(credentials.secret)
        elif credentials.kind in ("password", "netrc"):
            session.auth_with_creds(credentials.username, credentials.secret)
    except asf.ASFAuthenticationError:
        raise AuthenticationError(
            f"Earthdata Login refused the {credentials}; check them (tokens expire after "
            "60 days: make a new one at https://urs.earthdata.nasa.gov/user_tokens)"
        ) from None
    except OSError as exc:
        raise NetworkError(
            f"could not reach Earthdata Login ({type(exc).__name__}); check the internet "
            "connection and try again"
        ) from None
    return session


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_complete(path: Path, size: Any, md5: Any) -> bool:
    if not path.is_file():
        return False
    if size is None or pd.isna(size):
        return False  # nothing to check against: download again
    if path.stat().st_size != int(size):
        return False
    if md5 and isinstance(md5, str):
        return _md5(path) == md5.lower()
    return True


def _targets(items: Any) -> list[tuple[str, str, Any, Any]]:
    """(url, file name, bytes, md5) for scenes, pairs or plain URLs."""
    if isinstance(items, str):
        items = [items]
    if isinstance(items, pd.DataFrame):
        out = []
        prefixes = ("",) if "url" in items.columns else ("ref_", "sec_")
        if not all(f"{p}url" in items.columns for p in prefixes):
            raise InvalidParameterError(
                "the table has no url column; pass the result of search_scenes() or find_pairs()"
            )
        for record in items.to_dict("records"):
            for p in prefixes:
                url = record[f"{p}url"]
                name = record.get(f"{p}file_name") or url.rsplit("/", 1)[-1]
                out.append((url, name, record.get(f"{p}bytes"), record.get(f"{p}md5sum")))
        unique: dict[str, tuple[str, str, Any, Any]] = {}
        for item in out:  # the first entry of each URL, in order
            unique.setdefault(item[0], item)
        return list(unique.values())
    return [(u, u.rsplit("/", 1)[-1].split("?")[0], None, None) for u in items]


def _fetch(session: Any, url: str, partial: Path, timeout: float, chunk_size: int) -> None:
    response = session.get(url, stream=True, timeout=timeout)
    try:
        status = int(response.status_code)
        if status in (401, 403):
            raise AuthenticationError(
                f"ASF refused the download of {url} (HTTP {status}); check the Earthdata "
                "credentials and that you accepted the ASF EULA at "
                "https://urs.earthdata.nasa.gov"
            )
        if status in _TRANSIENT_STATUS:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise NetworkError(f"downloading {url} failed with HTTP {status}; check the URL")
        with open(partial, "wb") as f:
            for block in response.iter_content(chunk_size=chunk_size):
                if block:
                    f.write(block)
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()


class _Transient(Exception):
    """A failure worth retrying."""


def download(
    items: Any,
    directory: str | os.PathLike[str],
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    session: Any = None,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> list[Path]:
    """Download products into ``directory``, skipping the complete ones.

    Parameters
    ----------
    items : pandas.DataFrame, str or list of str
        Scenes (:func:`search_scenes`), pairs (:func:`find_pairs`: both
        images), or URLs.
    directory : str or path-like
        Created if missing.
    token, username, password : str, optional
        Earthdata Login credentials; see :func:`resolve_credentials`.
    session : requests.Session-like, optional
        An authenticated session (e.g. ``asf_search.ASFSession``); then no
        credentials are looked up.
    retries : int, default 3
        Extra attempts after a transient failure (connection error, timeout,
        HTTP 5xx/429, size or checksum mismatch), waiting ``backoff * 2**k`` s.
    timeout : float, default 60
        Seconds to wait for the server.
    chunk_size : int
        Bytes per write.

    Returns
    -------
    list of pathlib.Path
        The local files, in the order of ``items``.

    Raises
    ------
    MissingCredentialsError, AuthenticationError
        No credentials, or refused ones (not retried).
    NetworkError, DownloadError
        Still failing after the retries.
    """
    import requests

    targets = _targets(items)
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    done = [_is_complete(out_dir / t[1], t[2], t[3]) for t in targets]
    if not all(done) and session is None:
        session = _make_session(resolve_credentials(token, username, password))
    for (url, name, size, md5), complete in zip(targets, done, strict=True):
        path = out_dir / name
        paths.append(path)
        if complete:
            log.debug("%s is complete, not downloaded again", path)
            continue
        partial = path.with_name(path.name + ".partial")
        for attempt in range(retries + 1):
            try:
                _fetch(session, url, partial, timeout, chunk_size)
                if size is not None and not pd.isna(size) and partial.stat().st_size != int(size):
                    raise _Transient(f"got {partial.stat().st_size} bytes instead of {int(size)}")
                if md5 and isinstance(md5, str) and _md5(partial) != md5.lower():
                    raise _Transient("MD5 checksum mismatch")
                os.replace(partial, path)
                break
            except TrackOffError:
                partial.unlink(missing_ok=True)
                raise
            except (_Transient, requests.ConnectionError, requests.Timeout, OSError) as exc:
                reason = str(exc) if isinstance(exc, _Transient) else type(exc).__name__
                if attempt == retries:
                    partial.unlink(missing_ok=True)
                    error = DownloadError if "bytes" in reason or "MD5" in reason else NetworkError
                    raise error(
                        f"downloading {url} failed {retries + 1} times (last: {reason}); "
                        "check the connection and try again: complete files are skipped"
                    ) from None
                wait = backoff * 2**attempt
                log.debug("download of %s failed (%s); retry in %.1f s", url, reason, wait)
                time.sleep(wait)
    return paths
