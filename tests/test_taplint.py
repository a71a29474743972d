"""``stilts taplint`` against gunicorn: no errors, and no warnings we have not explained.

taplint exits 0 even when it reports errors, so the Totals line is parsed.
"""
from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = pytest.mark.e2e

#: The stages of synchronous TAP (issue 4); async, uploads and examples add theirs.
SYNC_STAGES = "TMV TME TMS TMC CPV CAP AVV QGE QPO MDQ"

#: Warnings explained in docs/tap.md ("taplint warnings"); any other warning fails.
#: Currently none: taplint 3.4.7 reports no warnings for these stages.
EXPLAINED_WARNINGS: set[str] = set()

_TOTALS = re.compile(r"^Totals: Errors: (\d+); Warnings: (\d+)", re.M)
_REPORT = re.compile(r"^([EW])-([A-Z]{3})-([A-Z0-9]{4})-\S+ (.*)$", re.M)


def run_taplint(stilts: str, base: str, stages: str) -> tuple[int, int, str]:
    proc = subprocess.run(
        [stilts, "taplint", f"tapurl={base}/tap", f"stages={stages}", "report=EW",
         "maxrepeat=5"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    match = _TOTALS.search(proc.stdout)
    assert match, "no Totals line in the taplint report:\n" + proc.stdout[-3000:]
    return int(match.group(1)), int(match.group(2)), proc.stdout


def _assert_no_errors_or_unexplained_warnings(report: str, errors: int) -> list:
    """The report's (kind, stage, code, text) messages, after checking that none is an
    error and every warning is one explained in docs/ (EXPLAINED_WARNINGS)."""
    found = _REPORT.findall(report)
    assert errors == 0, "taplint errors:\n" + "\n".join(
        f"E-{s}-{c} {t}" for k, s, c, t in found if k == "E")
    unexplained = [f"W-{s}-{c} {t}" for k, s, c, t in found
                   if k == "W" and c not in EXPLAINED_WARNINGS]
    assert not unexplained, "unexplained taplint warnings:\n" + "\n".join(unexplained)
    return found


def test_taplint_sync_stages(live_server, stilts):
    errors, warnings, report = run_taplint(stilts, live_server, SYNC_STAGES)
    found = _assert_no_errors_or_unexplained_warnings(report, errors)
    assert warnings == sum(1 for k, *_ in found if k == "W")


#: Every default stage of taplint 3.4.7, including those of async TAP (QAS, UWS),
#: uploads (UPL), examples (EXA) and ObsCore (OBS: ivoa.obscore, ObsCore 1.1); LOC
#: skips itself (no ObsLocTAP).
ALL_STAGES = SYNC_STAGES + " QAS UWS UPL EXA OBS"


def test_taplint_all_stages(live_server, stilts):
    errors, warnings, report = run_taplint(stilts, live_server, ALL_STAGES)
    _assert_no_errors_or_unexplained_warnings(report, errors)
    for stage in ("QAS", "UWS", "UPL", "EXA", "OBS"):
        assert f"Section {stage}" in report, f"taplint did not run stage {stage}"
    assert "F-UPL-NOUP" not in report            # uploads are declared and tested


def test_taplint_obscore_stage_checks_obscore_1_1(live_server, stilts):
    """OBS runs its checks (ObsCore 1.1 declared, every mandatory column present)."""
    proc = subprocess.run(
        [stilts, "taplint", f"tapurl={live_server}/tap", "stages=TME CAP OBS",
         "report=EWISF"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    report = proc.stdout
    assert "I-OBS-DMID-1 Checking against ObsCore DM 1.1" in report
    assert re.search(r"S-OBS-COLS-1 ivoa.ObsCore columns: 30/30 required", report), report
    assert not re.search(r"^[EWF]-OBS-", report, re.M), report
    assert _TOTALS.search(report).groups() == ("0", "0")
