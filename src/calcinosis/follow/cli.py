"""``calcinosis compare BASELINE FOLLOWUP --out DIR``: follow-up of one patient's calcinosis.

Each of BASELINE and FOLLOWUP is either a CT input as for ``analyze`` (DICOM folder,
NIfTI, NRRD, MetaImage), which is analysed and written to ``DIR/baseline/`` or
``DIR/followup/``, or a folder written earlier by ``calcinosis analyze``; such a
folder holds the lesions but not the image, so the CT it was made from must be
given with ``--baseline-image`` / ``--followup-image`` (it is needed for the
registration and the pictures, and is checked against the analysed grid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calcinosis.errors import InputError
from calcinosis.follow.compare import Comparison, compare_visits
from calcinosis.follow.config import CompareConfig, RegistrationConfig
from calcinosis.follow.outputs import check_tracks_follow, read_track_ids, write_comparison
from calcinosis.follow.visit import Visit, is_analysis_folder, load_analysis_folder, visit_from_analysis
from calcinosis.volume import Volume


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two CTs of one patient deposit by deposit",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", help="baseline CT input, or an analyze output folder (with --baseline-image)")
    p.add_argument("followup", help="follow-up CT input, or an analyze output folder (with --followup-image)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--baseline-image", default=None, metavar="PATH",
                   help="the CT a baseline analyze folder was made from")
    p.add_argument("--followup-image", default=None, metavar="PATH",
                   help="the CT a follow-up analyze folder was made from")
    p.add_argument("--baseline-series", default=None, metavar="UID", help="DICOM SeriesInstanceUID of the baseline")
    p.add_argument("--followup-series", default=None, metavar="UID", help="DICOM SeriesInstanceUID of the follow-up")
    p.add_argument("--change-pct", type=float, default=25.0,
                   help="mass change (%%) above which a deposit or the total has grown / shrunk (default 25)")
    p.add_argument("--noise-sds", type=float, default=2.0,
                   help="a change within this many SDs of the image noise is stable whatever its "
                        "percentage (default 2; 0 turns it off)")
    p.add_argument("--baseline-tracks", default=None, metavar="CHANGES_CSV",
                   help="changes.csv of the comparison whose follow-up is this baseline: keeps track ids")
    p.add_argument("--any-patients", action="store_true",
                   help="compare even when the DICOM headers give different patients or the follow-up an "
                        "earlier date (identifiers changed by anonymisation)")
    p.add_argument("--affine", default="auto", choices=("auto", "never", "always"),
                   help="affine refinement after the rigid registration (default auto)")
    p.add_argument("--threshold-hu", type=float, default=130.0, help="detection threshold, HU, for new analyses (default 130)")
    p.add_argument("--calibration", type=float, default=0.8, metavar="MG_PER_HU_CM3",
                   help="mass calibration c in mg/(cm³·HU) for new analyses (default 0.8)")
    p.add_argument("--no-report", action="store_true", help="skip the report.html files")
    p.set_defaults(func=cmd_compare)


def run_compare(baseline_input, followup_input, out_dir, *, baseline_image=None, followup_image=None,
                baseline_series=None, followup_series=None, analysis_config=None,
                compare_config: CompareConfig = CompareConfig(), baseline_tracks=None, report: bool = True,
                progress=None, check_patient: bool = True) -> Comparison:
    """Analyse (or load) both visits, compare them and write ``out_dir``: the library side of the CLI."""
    from calcinosis.config import AnalysisConfig
    from calcinosis.follow.outputs import COMPARISON_FILES
    from calcinosis.outputs import ANALYSIS_FILES, prepare_out_dir

    step = progress or (lambda _m: None)
    config = analysis_config or AnalysisConfig()
    for inp in (baseline_input, followup_input):
        if not Path(inp).exists():
            raise InputError(f"input {inp} does not exist; give a CT input or an analyze output folder")
    tracks = read_track_ids(baseline_tracks) if baseline_tracks else None
    # Each visit given as a CT is analysed into out/<visit>; one given as an analyze folder is read.
    analysed = [name for name, inp in (("baseline", baseline_input), ("followup", followup_input))
                if not is_analysis_folder(inp)]
    out = prepare_out_dir(out_dir, baseline_input, followup_input, baseline_image, followup_image,
                          writes=COMPARISON_FILES + tuple(f"{name}/{f}" for name in analysed for f in ANALYSIS_FILES))
    made = {name: not (out / name).exists() for name in analysed}
    earlier = {name: _stamp(out / name / "summary.json") for name in analysed}
    try:
        return _compare_into(out, baseline_input, followup_input, analysed, baseline_image, followup_image,
                             baseline_series, followup_series, config, compare_config, tracks, baseline_tracks,
                             report, step, check_patient)
    except BaseException:
        _remove_visit_analyses(out, made, earlier)
        raise


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _remove_visit_analyses(out: Path, made: dict[str, bool], earlier: dict[str, tuple[int, int] | None]) -> None:
    """After a run that failed (or Ctrl-C) midway, remove the visits' analyses it wrote into
    OUT/baseline and OUT/followup (not an earlier run's it had not replaced yet), and those
    folders where it made them: they were left behind without the comparison they were written
    for (and an empty OUT/baseline after Ctrl-C while reading)."""
    from calcinosis.outputs import ANALYSIS_FILES, remove_stale
    from calcinosis.paths import earlier_output

    for name, made_here in made.items():
        folder = out / name
        try:
            summary = folder / "summary.json"
            if _stamp(summary) not in (None, earlier[name]) and earlier_output(folder, "summary.json"):
                remove_stale(folder, {}, ANALYSIS_FILES)
            if made_here and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        except (OSError, InputError):  # the first error is the one to tell
            pass


def _compare_into(out, baseline_input, followup_input, analysed, baseline_image, followup_image,
                  baseline_series, followup_series, config, compare_config, tracks, baseline_tracks,
                  report, step, check_patient) -> Comparison:
    links = {}
    visits: list[Visit] = []
    volumes = {}
    for name, inp, image, series in (("baseline", baseline_input, baseline_image, baseline_series),
                                     ("followup", followup_input, followup_image, followup_series)):
        step(f"{name}: reading")
        volumes[name] = _read_visit_volume(name, inp, image, series)
    if check_patient:
        check_same_patient(volumes["baseline"], volumes["followup"])
    _clear_earlier_comparison(out)
    for name, inp in (("baseline", baseline_input), ("followup", followup_input)):
        if name not in analysed:
            _clear_earlier_visit(out / name, inp)
        visit = _load_visit(name, inp, volumes[name], config, out, report, step)
        if visit.analysis is not None:
            links[f"{name} analysis"] = f"{name}/report.html" if report else f"{name}/summary.json"
        visits.append(visit)
    if baseline_tracks:
        check_tracks_follow(baseline_tracks, visits[0])
    step("registering and matching")
    cmp = compare_visits(visits[0], visits[1], compare_config, track_ids=tracks)
    step("writing")
    write_comparison(cmp, out, baseline_source=source_label(baseline_input), followup_source=source_label(followup_input),
                     report=report, analysis_links=links)
    return cmp


def source_label(visit_input) -> str:
    """What a visit was given as, without its name (a folder or file name can be the patient's,
    and analyze writes names only with --keep-identifiers): a DICOM series, an analyze output
    folder, or a file of its format."""
    path = Path(visit_input)
    if is_analysis_folder(path):
        return "analyze output folder"
    if path.is_dir():
        return "DICOM series"
    name = path.name.lower()
    return next((f"{suffix} file" for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
                 if name.endswith(suffix)), "file")


def _clear_earlier_comparison(out: Path) -> None:
    """Remove an earlier run's comparison from ``out`` before this run writes its first file
    (a visit's analysis): a rerun that failed after that left the earlier comparison.json
    beside this run's visit analyses, or, now that those are removed, beside none."""
    from calcinosis.follow.outputs import COMPARISON_FILES
    from calcinosis.outputs import remove_stale
    from calcinosis.paths import earlier_output

    if earlier_output(out, "comparison.json"):
        remove_stale(out, {}, COMPARISON_FILES)


def _clear_earlier_visit(folder: Path, visit_input) -> None:
    """Remove an earlier run's analysis of a visit from ``folder`` (OUT/baseline or
    OUT/followup) when this run reads that visit from another analyze folder: it was left
    beside the new comparison, which then named one scan and showed another's outlines.
    Nothing is removed from the visit's own input folder, nor from a folder that holds no
    calcinosis output."""
    from calcinosis.outputs import ANALYSIS_FILES, remove_stale
    from calcinosis.paths import earlier_output

    if not folder.is_dir() or folder.resolve() == Path(visit_input).resolve() or not earlier_output(folder, "summary.json"):
        return
    remove_stale(folder, {}, ANALYSIS_FILES)
    if not any(folder.iterdir()):
        folder.rmdir()


def _date_digits(value) -> str | None:
    """A DICOM date as YYYYMMDD (also from the retired YYYY.MM.DD form); None when it is not one."""
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    return digits if len(digits) == 8 else None


def _read_visit_volume(name, inp, image, series):
    """The CT of one visit: ``inp`` itself, or ``image`` when ``inp`` is an analyze output folder."""
    from calcinosis.io import read_volume

    flag = f"--{name}-image"
    if is_analysis_folder(inp):
        if image is None:
            raise InputError(f"{inp} is an analyze output folder; give the CT it was made from with {flag}")
        return read_volume(image, series_uid=series)
    if image is not None:
        raise InputError(f"{flag} applies only when the {name} input is an analyze output folder")
    return read_volume(inp, series_uid=series)


def _load_visit(name, inp, volume, config, out: Path, report: bool, step) -> Visit:
    from calcinosis.outputs import OutputOptions, write_analysis
    from calcinosis.pipeline import analyze

    if is_analysis_folder(inp):
        return load_analysis_folder(inp, volume, name)
    analysis = analyze(volume, config, progress=lambda m: step(f"{name}: {m}"))
    write_analysis(analysis, out / name, OutputOptions(report=report))
    return visit_from_analysis(analysis, name)


def check_same_patient(baseline: Volume, followup: Volume) -> None:
    """Refuse two scans that cannot be one patient's baseline and follow-up, by what their DICOM
    headers say (a NIfTI says nothing): different patients (ID or birth date), or a follow-up
    taken before the baseline (its changes would read backwards). (A scan compared with itself
    is allowed, a check of repeatability; the comparison warns of it.)
    No identifier is quoted: the message may end up in a log."""
    b, f = baseline.metadata, followup.metadata
    bid, fid = b.get("identifiers") or {}, f.get("identifiers") or {}
    for key, what in (("patient_id", "patient IDs"), ("patient_birth_date", "birth dates")):
        if bid.get(key) and fid.get(key) and bid[key].strip() != fid[key].strip():
            raise InputError(f"the baseline and the follow-up have different {what} in their DICOM headers: "
                             "they are not one patient's scans (if they are, add --any-patients)")
    before, after = _date_digits(b.get("study_date")), _date_digits(f.get("study_date"))
    if before and after and after < before:
        raise InputError(f"the follow-up ({f['study_date']}) was taken before the baseline ({b['study_date']}); "
                         "give the earlier scan first (or add --any-patients)")


def cmd_compare(args) -> int:
    from calcinosis.paths import new_folder_removed_on_error
    from calcinosis.config import AnalysisConfig

    analysis_config = AnalysisConfig(threshold_hu=args.threshold_hu,
                                     mass_calibration_mg_per_hu_cm3=args.calibration)
    compare_config = CompareConfig(change_pct=args.change_pct, noise_sds=args.noise_sds, registration=RegistrationConfig(affine=args.affine))
    status = None
    step = None
    if sys.stderr.isatty():
        from rich.console import Console

        status = Console(stderr=True).status("starting")
        status.start()
        step = lambda msg: status.update(f"calcinosis compare: {msg}")  # noqa: E731
    try:
        with new_folder_removed_on_error(args.out):
            cmp = run_compare(args.baseline, args.followup, args.out, baseline_image=args.baseline_image,
                              followup_image=args.followup_image, baseline_series=args.baseline_series,
                              followup_series=args.followup_series, analysis_config=analysis_config,
                              compare_config=compare_config, baseline_tracks=args.baseline_tracks,
                              report=not args.no_report, progress=step, check_patient=not args.any_patients)
    finally:
        if status:
            status.stop()
    if sys.stdout.isatty():
        print(f"overall: {cmp.overall} ({cmp.overall_change_pct:+.1f} % mass); results in {args.out}")
    return 0
