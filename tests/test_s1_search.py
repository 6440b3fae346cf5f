"""Sentinel-1 search, pairing and download, offline: recorded ASF results, fake sessions."""

import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from trackoff_xr import InvalidParameterError, TrackOffError
from trackoff_xr.io import asf as s1
from trackoff_xr.io.asf import (
    AuthenticationError,
    Credentials,
    DownloadError,
    MissingCredentialsError,
    NetworkError,
    download,
    find_pairs,
    resolve_credentials,
    search_scenes,
)

from .helpers import DATES, PIXEL, SHIFT, recorded_results, write_geotiff_pair

asf_search = pytest.importorskip("asf_search")
asf_search.REPORT_ERRORS = False

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "s1_velocity.py"


@pytest.fixture
def fake_search(monkeypatch):
    calls = []

    def search(**kwargs):
        calls.append(kwargs)
        return recorded_results()

    monkeypatch.setattr(asf_search, "search", search)
    return calls


def test_search_builds_the_query_and_a_table(fake_search):
    scenes = search_scenes((-50.2, 69.05, -49.4, 69.25), "2021-03-01", "2021-04-01")
    (query,) = fake_search
    assert query["processingLevel"] == "GRD_HD" and query["beamMode"] == "IW"
    assert query["platform"] == "SENTINEL-1"
    assert query["intersectsWith"].startswith("POLYGON((-50.2 69.05,")
    assert query["start"].startswith("2021-03-01") and query["end"].startswith("2021-04-01")
    assert len(scenes) == 7 and scenes.start.is_monotonic_increasing
    first = scenes.iloc[0]
    assert first.scene.startswith("S1B_IW_GRDH_1SDV_20210302")
    assert (first.relative_orbit, first.frame, first.flight_direction) == (90, 221, "DESCENDING")
    assert first.url.endswith(".zip") and first.bytes > 0 and len(first.md5sum) == 32
    assert first.start == pd.Timestamp("2021-03-02T09:22:33")
    assert first.geometry.startswith("POLYGON")


def test_pairs_share_orbit_and_frame_with_the_chosen_gaps(fake_search):
    wkt = "POLYGON((-50 69,-49 69,-49 70,-50 70,-50 69))"
    scenes = search_scenes(wkt, "2021-03-01", "2021-04-01")
    six = find_pairs(scenes, gaps=(6,))
    assert len(six) == 4 and set(six.relative_orbit) == {90} and set(six.frame) == {221}
    assert np.allclose(six.days, 6.0, atol=0.01)
    twelve = find_pairs(scenes, gaps=(12,))
    assert set(zip(twelve.relative_orbit, twelve.frame, strict=True)) == {(90, 221), (25, 380)}
    assert len(twelve) == 4
    both = find_pairs(scenes, gaps=(6, 12, 24))
    assert set(both.gap) == {6.0, 12.0, 24.0}
    assert (both.sec_start > both.ref_start).all()
    assert {"ref_url", "sec_url", "ref_md5sum", "sec_bytes"} <= set(both.columns)
    with pytest.raises(InvalidParameterError, match="gaps"):
        find_pairs(scenes, gaps=(0,))


def test_search_errors_become_trackoff_errors(monkeypatch):
    def search(**kwargs):
        raise asf_search.ASFSearch5xxError("CMR is down")

    monkeypatch.setattr(asf_search, "search", search)
    with pytest.raises(NetworkError, match="try again later") as info:
        search_scenes((-50, 69, -49, 70), "2021-03-01", "2021-04-01")
    assert isinstance(info.value, TrackOffError)
    with pytest.raises(InvalidParameterError, match="west < east"):
        search_scenes((-49, 69, -50, 70), "2021-03-01", "2021-04-01")
    with pytest.raises(InvalidParameterError, match="not after"):
        search_scenes((-50, 69, -49, 70), "2021-04-01", "2021-03-01")


# ----------------------------------------------------------------------- credentials

SECRET = "s3cr3t-token-value"


def test_credentials_order_and_secrecy(monkeypatch, tmp_path):
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    netrc_file = tmp_path / "netrc"
    with pytest.raises(MissingCredentialsError, match="EARTHDATA_TOKEN.*netrc") as info:
        resolve_credentials(netrc_file=netrc_file)
    assert isinstance(info.value, TrackOffError)
    netrc_file.write_text(f"machine urs.earthdata.nasa.gov login alice password {SECRET}\n")
    netrc_file.chmod(0o600)
    creds = resolve_credentials(netrc_file=netrc_file)
    assert (creds.kind, creds.username, creds.secret) == ("netrc", "alice", SECRET)
    monkeypatch.setenv("EARTHDATA_TOKEN", SECRET)
    creds = resolve_credentials(netrc_file=netrc_file)
    assert (creds.kind, creds.source) == ("token", "EARTHDATA_TOKEN")
    assert resolve_credentials(token="explicit").secret == "explicit"
    with pytest.raises(MissingCredentialsError, match="both username= and password="):
        resolve_credentials(username="bob")
    for text in (repr(creds), str(creds)):
        assert SECRET not in text


def test_download_without_credentials_says_how_to_log_in(monkeypatch, tmp_path):
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingCredentialsError, match="token="):
        download(["https://datapool.asf.alaska.edu/GRD_HD/SA/x.zip"], tmp_path / "dl")


def test_refused_credentials(monkeypatch):
    def refuse(self, token):
        raise asf_search.ASFAuthenticationError("Invalid/Expired token passed")

    monkeypatch.setattr(asf_search.ASFSession, "auth_with_token", refuse)
    with pytest.raises(AuthenticationError, match="refused") as info:
        s1._make_session(Credentials("token", secret=SECRET))
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("tail", ["\r\n", "\n", "\r", "  \t"], ids=repr)
def test_token_pasted_with_a_line_end_is_stripped(monkeypatch, tmp_path, tail):
    # a token copied from a Windows file ends in CR LF; it used to become an invalid
    # "Authorization: Bearer ...\r\n" header, reported as a network failure
    posted, sent = [], []

    def post(self, url, data=None, **kwargs):
        posted.append(data["token"])
        return FakeResponse(200)

    def send(self, request, **kwargs):
        sent.append(request.headers["Authorization"])
        response = requests.Response()
        response.status_code, response.raw, response.url = 200, io.BytesIO(b"D" * 50), request.url
        return response

    monkeypatch.setattr(asf_search.ASFSession, "post", post)
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    url = "https://datapool.asf.alaska.edu/GRD_HD/SA/t.zip"
    (path,) = download([url], tmp_path, token=SECRET + tail, retries=0, backoff=0)
    assert path.read_bytes() == b"D" * 50
    assert posted == [SECRET] and sent == [f"Bearer {SECRET}"]
    monkeypatch.setenv("EARTHDATA_TOKEN", tail + SECRET + tail)
    assert resolve_credentials().secret == SECRET


def test_token_of_whitespace_only_is_no_token(monkeypatch, tmp_path):
    monkeypatch.setenv("EARTHDATA_TOKEN", " \r\n")
    with pytest.raises(MissingCredentialsError, match="no Earthdata Login credentials"):
        resolve_credentials(netrc_file=tmp_path / "netrc")


@pytest.mark.parametrize("bad", ["\x00", "\r\n", "\x1b"], ids=repr)
def test_token_with_control_characters_is_refused_clearly(monkeypatch, bad):
    token = SECRET[:6] + bad + SECRET[6:]
    with pytest.raises(AuthenticationError, match=r"token=.*control character.*position 6") as info:
        resolve_credentials(token=token)
    assert SECRET[:6] not in str(info.value) and not isinstance(info.value, NetworkError)
    if "\x00" in token:
        return  # the environment cannot hold a NUL byte
    monkeypatch.setenv("EARTHDATA_TOKEN", token)
    with pytest.raises(AuthenticationError, match="EARTHDATA_TOKEN.*control character"):
        download(["https://datapool.asf.alaska.edu/GRD_HD/SA/t.zip"], "unused-dir")


# -------------------------------------------------------------------------- download


class FakeResponse:
    def __init__(self, status, body=b""):
        self.status_code, self.body, self.closed = status, body, False

    def iter_content(self, chunk_size=1):
        for i in range(0, len(self.body), chunk_size):
            yield self.body[i : i + chunk_size]

    def close(self):
        self.closed = True


class FakeSession:
    """Answers each URL with a scripted list of responses (or exceptions)."""

    def __init__(self, script):
        self.script = {url: list(answers) for url, answers in script.items()}
        self.calls = []

    def get(self, url, stream=False, timeout=None):
        self.calls.append(url)
        answer = self.script[url].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _scene_table(bodies):
    return pd.DataFrame(
        {
            "url": [f"https://datapool.asf.alaska.edu/GRD_HD/SA/{n}.zip" for n in bodies],
            "file_name": [f"{n}.zip" for n in bodies],
            "bytes": [len(b) for b in bodies.values()],
            "md5sum": [hashlib.md5(b).hexdigest() for b in bodies.values()],
        }
    )


def test_download_retries_skips_complete_files_and_checks_sums(tmp_path):
    bodies = {"a": b"A" * 3000, "b": b"B" * 1000}
    table = _scene_table(bodies)
    url_a, url_b = table.url
    session = FakeSession(
        {
            url_a: [
                FakeResponse(503),
                requests.ConnectionError("reset"),
                FakeResponse(200, bodies["a"]),
            ],
            url_b: [FakeResponse(200, b"B" * 999), FakeResponse(200, bodies["b"])],
        }
    )
    paths = download(table, tmp_path, session=session, backoff=0, chunk_size=512)
    assert [p.name for p in paths] == ["a.zip", "b.zip"]
    assert paths[0].read_bytes() == bodies["a"] and paths[1].read_bytes() == bodies["b"]
    assert session.calls == [url_a, url_a, url_a, url_b, url_b]
    assert not list(tmp_path.glob("*.partial"))
    # complete files are not fetched again, even without a session or credentials
    again = download(table, tmp_path, session=FakeSession({}), backoff=0)
    assert again == paths


def test_download_failures(tmp_path):
    table = _scene_table({"c": b"C" * 100})
    (url,) = table.url
    with pytest.raises(AuthenticationError, match="HTTP 401.*EULA"):
        download(table, tmp_path, session=FakeSession({url: [FakeResponse(401)]}), backoff=0)
    corrupt = FakeSession({url: [FakeResponse(200, b"X" * 100)] * 3})
    with pytest.raises(DownloadError, match="failed 3 times.*MD5"):
        download(table, tmp_path, session=corrupt, retries=2, backoff=0)
    down = FakeSession({url: [requests.Timeout("slow")] * 2})
    with pytest.raises(NetworkError, match="failed 2 times.*Timeout"):
        download(table, tmp_path, session=down, retries=1, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_download_pairs_fetches_both_images_once(tmp_path, fake_search):
    scenes = search_scenes((-50, 69, -49, 70), "2021-03-01", "2021-04-01")
    pairs = find_pairs(scenes, gaps=(6,)).iloc[:2]  # three distinct scenes
    urls = list(dict.fromkeys([*pairs.ref_url, *pairs.sec_url]))
    assert len(urls) == 3
    body = {row.url: b"x" * int(row.bytes) for row in scenes.itertuples()}
    pairs = pairs.assign(  # the recorded md5 sums are placeholders: match the fake bodies
        ref_md5sum=[hashlib.md5(body[u]).hexdigest() for u in pairs.ref_url],
        sec_md5sum=[hashlib.md5(body[u]).hexdigest() for u in pairs.sec_url],
    )
    session = FakeSession({u: [FakeResponse(200, body[u])] for u in urls})
    paths = download(pairs, tmp_path, session=session, backoff=0)
    assert [p.name for p in paths] == [u.rsplit("/", 1)[-1] for u in urls]
    assert sorted(session.calls) == sorted(urls)


# --------------------------------------------------------------------------- example


def _example():
    spec = importlib.util.spec_from_file_location("s1_velocity_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_offline_part(tmp_path, fake_search):
    example = _example()
    pair = example.find_pair((-50, 69, -49, 70), "2021-03-01", "2021-04-01", gap=12)
    assert pair.days == pytest.approx(12.0, abs=0.01)
    ref, sec = write_geotiff_pair(tmp_path)
    result = example.process_pair(
        ref, sec, tmp_path / "out", dates=DATES, patch_size=32, spacing=32, search_radius=8
    )
    ds = result["dataset"].compute()
    years = 12 / 365.25
    assert float(ds.vx.median()) == pytest.approx(SHIFT[1] * PIXEL / years, rel=0.01)
    assert float(ds.vy.median()) == pytest.approx(-SHIFT[0] * PIXEL / years, rel=0.01)
    assert Path(result["zarr"]).is_dir() and len(result["geotiff"]) == 4
    assert result["csv"].read_text().startswith("no,x,y,dX,dY")


def test_cli_s1_search_and_download(fake_search, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from trackoff_xr.cli import cli

    out = tmp_path / "pairs.csv"
    result = CliRunner().invoke(
        cli,
        [
            "s1",
            "search",
            "--bbox",
            "-50.2",
            "69.05",
            "-49.4",
            "69.25",
            "--start",
            "2024-02-01",
            "--end",
            "2024-03-01",
            "--gap",
            "12",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert fake_search and "reference" in result.output and out.exists()
    fetched = []
    monkeypatch.setattr(
        "trackoff_xr.io.asf.download",
        lambda items, directory, token=None: fetched.append((items, token)) or [],
    )
    result = CliRunner().invoke(
        cli, ["s1", "download", str(out), "--dir", str(tmp_path), "--token", "secret"]
    )
    assert result.exit_code == 0, result.output
    assert len(fetched) == 1 and "ref_url" in fetched[0][0] and fetched[0][1] == "secret"
    assert "secret" not in result.output
    bad = CliRunner().invoke(cli, ["s1", "search", "--start", "2024-02-01", "--end", "2024-03-01"])
    assert bad.exit_code == 2 and "--bbox" in bad.output
