"""Run the CF checkers on a netCDF file, offline and with pip-installed packages only.

Two independent checkers:

* :func:`cfchecks` -- the CF Conventions checker ``cfchecks`` (package
  ``cfchecker``). As installed by pip it does not run offline: ``cfunits``
  looks for a system ``libudunits2`` and ``cfchecks`` downloads its three XML
  tables from cfconventions.org. Here it is run in a subprocess that points
  ``ctypes`` at the ``libudunits2`` bundled in the ``cf-units`` wheel,
  passes the standard-name table bundled with ``compliance-checker`` and two
  minimal area-type and region tables, so nothing is downloaded.
* :func:`compliance_check` -- the IOOS ``compliance-checker`` (``cf:1.8``
  suite by default), through its Python API; it ships its own tables.

Both need ``pip install "cfchecker>=4.1" "compliance-checker>=5.1" netCDF4``
(the ``test`` extra); a missing one raises :class:`ImportError`.

Examples
--------
>>> result = CFChecksResult(errors=0, warnings=1, output="", messages=["[x] WARN: ..."])
>>> result.errors == 0 and len(result.messages) == result.warnings
True
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CFChecksResult", "ComplianceResult", "cfchecks", "compliance_check"]


@dataclass(frozen=True)
class CFChecksResult:
    """What ``cfchecks`` said about one file."""

    errors: int
    warnings: int
    output: str
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ComplianceResult:
    """What ``compliance-checker`` said about one file for one suite."""

    suite: str
    scored: int
    possible: int
    high: int
    medium: int
    low: int
    failures: list[str] = field(default_factory=list)


def _require(module: str, pip: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{module} is not installed; pip install {pip!r}")


def cfchecks(path: str | os.PathLike[str], *, version: str = "1.8") -> CFChecksResult:
    """Run ``cfchecks -v <version>`` on ``path`` offline and count its errors and warnings.

    Raises
    ------
    ImportError
        ``cfchecker``, ``cf-units`` or ``compliance-checker`` is not installed.
    RuntimeError
        cfchecks crashed (no ``ERRORS detected`` line); the message holds its output.
    """
    for module, pip in (
        ("cfchecker", "cfchecker>=4.1"),
        ("cf_units", "cf-units"),
        ("compliance_checker", "compliance-checker>=5.1"),
    ):
        _require(module, pip)
    proc = subprocess.run(
        [sys.executable, "-m", __name__, "-v", version, os.fspath(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    out = proc.stdout + proc.stderr
    match = re.search(r"ERRORS detected:\s*(\d+).*?WARNINGS given:\s*(\d+)", out, re.S)
    if match is None:
        raise RuntimeError(f"cfchecks did not finish on {os.fspath(path)}:\n{out[-4000:]}")
    messages = []
    variable = "(global)"
    for line in out.splitlines():
        if line.startswith("Checking variable:"):
            variable = line.split(":", 1)[1].strip()
        elif line.startswith(("ERROR", "WARN", "FATAL")):
            messages.append(f"[{variable}] {line}")
    return CFChecksResult(int(match.group(1)), int(match.group(2)), out, messages)


def compliance_check(path: str | os.PathLike[str], suite: str = "cf:1.8") -> ComplianceResult:
    """Run the IOOS compliance-checker suite ``suite`` on ``path``.

    Returns the points scored and possible, the count of failed checks per
    priority and each failed check's messages.

    Raises
    ------
    ImportError
        ``compliance-checker`` is not installed.
    """
    _require("compliance_checker", "compliance-checker>=5.1")
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        ComplianceChecker.run_checker(
            os.fspath(path), [suite], 0, "normal", output_filename=str(report),
            output_format="json_new",
        )  # fmt: skip
        data: Any = json.loads(report.read_text())
    result = next(iter(data.values()))[suite] if suite not in data else data[suite]
    failures: list[str] = []

    def walk(item: dict[str, Any]) -> None:
        scored, possible = item["value"]
        if scored < possible:
            failures.extend(f"{item['name']}: {msg}" for msg in item.get("msgs", []))
        for child in item.get("children", []):
            walk(child)

    for item in result["all_priorities"]:
        walk(item)
    return ComplianceResult(
        suite,
        int(result["scored_points"]),
        int(result["possible_points"]),
        int(result["high_count"]),
        int(result["medium_count"]),
        int(result["low_count"]),
        failures,
    )


def _main(argv: list[str]) -> int:
    """``python -m trackoff_xr.testing.cf_checks [cfchecks options] FILE``: offline cfchecks."""
    import ctypes.util
    import glob

    import cf_units
    import compliance_checker

    units = Path(cf_units.__file__).parent
    libs = sorted(glob.glob(str(units.parent / "cf_units.libs" / "libudunits2*.so*")))
    os.environ.setdefault("UDUNITS2_XML_PATH", str(units / "etc" / "share" / "udunits2.xml"))
    if libs:  # the wheel's own copy; a system libudunits2 is used otherwise
        find = ctypes.util.find_library
        ctypes.util.find_library = lambda name: libs[0] if name == "udunits2" else find(name)
    tables = Path(tempfile.mkdtemp())
    for name, root in (("area.xml", "area_type_table"), ("region.xml", "standardized_region_list")):
        (tables / name).write_text(
            f'<?xml version="1.0"?><{root}><version_number>0</version_number>'
            f"<date>2026-01-01</date></{root}>"
        )
    names = Path(compliance_checker.__file__).parent / "data" / "cf-standard-name-table.xml"
    from cfchecker.cfchecks import main

    sys.argv = [
        "cfchecks", "-s", str(names), "-a", str(tables / "area.xml"),
        "-r", str(tables / "region.xml"), *argv,
    ]  # fmt: skip
    return int(main() or 0)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
