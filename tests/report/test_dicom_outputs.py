"""DICOM SEG and SR written for a DICOM input, read back with highdicom and checked against lesions.csv."""

from __future__ import annotations

import re

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from calcinosis.io import read_volume
from calcinosis.report.tables import read_lesions_csv

DATA_URI = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/=]+")


def _rows(out):
    return read_lesions_csv(out / "lesions.csv")


def test_seg_has_one_segment_per_deposit_matching_the_label_map(runs, dicom_series):
    out = runs["default"]
    rows = _rows(out)
    assert len(rows) >= 5  # the phantom has deposits in both thighs
    seg = hd.seg.segread(out / "lesions_seg.dcm")
    assert seg.number_of_segments == len(rows)
    assert list(seg.get_segment_numbers()) == [r["lesion_id"] for r in rows]
    for r in rows:
        desc = seg.get_segment_description(r["lesion_id"])
        assert desc.segment_label == f"calcified deposit {r['lesion_id']}"
        assert desc.tracking_id == f"lesion-{r['lesion_id']}"
        assert desc.segmented_property_type == codes.SCT.PathologicCalcification

    # references the source series, in the source's geometry and slice order
    files = dicom_series[1]
    src = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert seg.StudyInstanceUID == src[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src[0].SeriesInstanceUID
    volume = read_volume(dicom_series[0])
    uids = volume.metadata["sop_instance_uids"]
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesions.nii.gz")))  # [z, y, x]
    np.testing.assert_array_equal(pixels, labels)
    counts = np.bincount(pixels.ravel(), minlength=len(rows) + 1)
    assert [int(c) for c in counts[1:]] == [r["n_voxels"] for r in rows]


def _measure(group, name, derivation=None):
    found = [m for m in group.get_measurements(name=name)
             if derivation is None or (m.derivation is not None and m.derivation == derivation)]
    assert len(found) == 1, name
    return found[0]


def test_sr_is_a_tid1500_report_with_each_deposits_measurements(runs):
    out = runs["default"]
    rows = {r["lesion_id"]: r for r in _rows(out)}
    seg = hd.seg.segread(out / "lesions_seg.dcm")
    sr = hd.sr.srread(out / "lesions_sr.dcm")  # parses and checks the content tree
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.StudyInstanceUID == seg.StudyInstanceUID
    # highdicom's own template checks: rebuilding the report from the stored tree must pass them
    report = hd.sr.MeasurementReport.from_sequence([sr])
    groups = report.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(rows)
    seen_uids = set()
    for group in groups:
        ref = group.referenced_segment
        assert len(ref.referenced_segment_numbers) == 1
        number = int(ref.referenced_segment_numbers[0])
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        row = rows[number]
        assert group.tracking_identifier == f"lesion-{number}"
        assert group.tracking_uid == seg.get_segment_description(number).tracking_uid
        seen_uids.add(group.tracking_uid)
        assert _measure(group, codes.SCT.Volume).value == pytest.approx(row["volume_mm3"], abs=0.006)
        assert _measure(group, codes.SCT.Volume).unit.value == "mm3"
        assert _measure(group, codes.DCM.CalciumMass).value == pytest.approx(row["mass_mg"], abs=0.0006)
        assert _measure(group, codes.DCM.CalciumMass).unit.value == "mg"
        assert _measure(group, codes.DCM.CalciumScore).value == pytest.approx(row["agatston"], abs=0.006)
        peak = _measure(group, codes.DCM.AttenuationCoefficient, codes.SCT.Maximum)
        assert peak.value == pytest.approx(row["peak_hu"], abs=0.06)
        assert peak.unit.value == "[hnsf'U]"
        sites = [fs.value.value for fs in group.finding_sites]
        compartment = {"cutaneous": codes.SCT.Skin, "subcutaneous": codes.SCT.SubcutaneousTissue,
                       "intramuscular": codes.SCT.SkeletalMuscle, "juxta_osseous": codes.SCT.SoftTissue}
        assert compartment[row["compartment"]].value in sites
        if row["side"] in ("left", "right"):
            want = {"left": codes.SCT.Left, "right": codes.SCT.Right}[row["side"]].value
            assert all(fs.laterality.value == want for fs in group.finding_sites)
    assert len(seen_uids) == len(rows)


def test_enhanced_multiframe_source_gives_the_same_lesions_and_a_seg_in_its_frame_order(tmp_path, dicom_series,
                                                                                        runs, enhanced_ct, patient):
    # The same series as one Legacy Converted Enhanced CT file, frames in reverse slice order.
    from calcinosis.cli import main

    path = enhanced_ct(dicom_series[1], tmp_path / "multi" / "ct.dcm")
    before = path.read_bytes()
    out = tmp_path / "out"
    assert main(["analyze", str(path.parent), "--out", str(out), "--no-report"]) == 0
    assert path.read_bytes() == before
    assert (out / "lesions.csv").read_text() == (runs["default"] / "lesions.csv").read_text()
    source = pydicom.dcmread(path, stop_before_pixels=True)
    seg = hd.seg.segread(out / "lesions_seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    frames = read_volume(path.parent).metadata["dicom_frames"]
    assert frames == list(range(len(frames)))[::-1]
    pixels = seg.get_pixels_by_source_frame(source.SOPInstanceUID, list(range(1, len(frames) + 1)),
                                            combine_segments=True, assert_missing_frames_are_empty=True)
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesions.nii.gz")))  # [z, y, x]
    assert labels.max() >= 5
    for z, frame in enumerate(frames):
        np.testing.assert_array_equal(pixels[frame], labels[z])
    sr = hd.sr.srread(out / "lesions_sr.dcm")
    groups = hd.sr.MeasurementReport.from_sequence([sr]).get_volumetric_roi_measurement_groups()
    assert len(groups) == len(_rows(out))
    for name in ("lesions_seg.dcm", "lesions_sr.dcm"):
        assert str(pydicom.dcmread(out / name).PatientID) == "ANONYMOUS"
        assert _identifier_hits(out / name, patient) == []


def test_tracking_uids_are_stable_for_the_same_study(runs):
    """A second analysis of the same series gives each deposit the same tracking UID."""
    a = hd.seg.segread(runs["default"] / "lesions_seg.dcm")
    b = hd.seg.segread(runs["keep"] / "lesions_seg.dcm")
    ids = a.get_segment_numbers()
    assert [a.get_segment_description(i).tracking_uid for i in ids] == \
        [b.get_segment_description(i).tracking_uid for i in ids]
    assert a.SOPInstanceUID != b.SOPInstanceUID  # but each SEG is a new instance


def test_tracking_uid_depends_on_study_and_place():
    from calcinosis.report.dicom_seg import tracking_uid

    class L:
        x_mm, y_mm, z_mm = 10.0, -20.0, 30.0

    class M(L):
        x_mm = 30.0

    u = tracking_uid("1.2.3", "1.2.4", L())
    assert u == tracking_uid("1.2.3", "1.2.4", L()) and u.startswith("2.25.") and len(u) <= 64
    assert re.fullmatch(r"[0-9.]+", u)
    assert u != tracking_uid("1.2.3", "1.2.4", M())
    assert u != tracking_uid("1.2.99", "1.2.4", L())


def _identifier_hits(path, patient):
    data = path.read_bytes()
    hits = [s.encode() for s in patient if s.encode() in data]
    if path.suffix in (".html", ".json", ".csv"):
        text = DATA_URI.sub(b"", data).lower()  # base64 may hold any 3 letters by chance
        hits += [s for s in (b"doe", b"jane") if s in text]
    else:
        hits += [s for s in (b"Jane",) if s in data]
    return hits


def test_no_patient_identifier_in_any_output_by_default(runs, patient):
    out = runs["default"]
    names = sorted(p.name for p in out.iterdir())
    assert {"lesions.csv", "summary.json", "report.html", "lesions.nii.gz", "lesions_seg.dcm",
            "lesions_sr.dcm"} <= set(names)
    for path in out.iterdir():
        assert _identifier_hits(path, patient) == [], path.name
    for name in ("lesions_seg.dcm", "lesions_sr.dcm"):
        ds = pydicom.dcmread(out / name)
        assert str(ds.PatientID) == "ANONYMOUS" and str(ds.PatientName).startswith("ANONYMOUS")
        assert ds.PatientIdentityRemoved == "YES"


# Attributes of the patient and study modules, which highdicom copies whole from the source into
# the SEG (and from it into the SR): only a list of names was removed, and these stayed.
PATIENT_STUDY_MODULE_ATTRIBUTES = {
    "Occupation": "Vbnmtailor", "AdditionalPatientHistory": "Vbnmhistory", "AdmissionID": "VBNM4471",
    "ResponsiblePerson": "Vbnmparent^Anna", "ClinicalTrialSubjectID": "VBNM-SUBJ-9", "MedicalAlerts": "Vbnmalert",
    "Allergies": "Vbnmallergy", "ConsultingPhysicianName": "Vbnmdoctor^Ben", "PatientComments": "Vbnmcomment",
}


def test_descriptions_and_institution_stay_out_of_the_dicom_outputs(dicom_series, tmp_path):
    # A study description held the patient's surname, and the SEG copied the institution's name
    # and address, the patient's age and the study ID (and the patient and study modules' other
    # attributes: PATIENT_STUDY_MODULE_ATTRIBUTES).
    from calcinosis.cli import main

    def edit(ds):
        ds.StudyDescription = "CT Zyxwquist thighs"
        ds.SeriesDescription = "Zyxwquist series"
        ds.PatientAge = "077Y"
        ds.StudyID = "STU889"
        ds.InstitutionName = "Qwerton Hospital"
        ds.InstitutionAddress = "1 Qwerton Road"
        for keyword, value in PATIENT_STUDY_MODULE_ATTRIBUTES.items():
            setattr(ds, keyword, value)

    folder = _copy_series(dicom_series[0], tmp_path / "ct", edit)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "--out", str(out), "--no-report"]) == 0
    assert {"lesions_seg.dcm", "lesions_sr.dcm"} <= {p.name for p in out.iterdir()}
    for path in out.iterdir():
        data = path.read_bytes()
        for word in (b"Zyxwquist", b"077Y", b"STU889", b"Qwerton", b"Vbnm", b"VBNM"):
            assert word not in data, (path.name, word)
    for name in ("lesions_seg.dcm", "lesions_sr.dcm"):
        ds = pydicom.dcmread(out / name, stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod.startswith("calcinosis")
        assert ds.StudyDate == pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).StudyDate


def test_keep_identifiers_copies_them_into_the_dicom_outputs(runs, dicom_series, patient):
    name_, id_, birth = patient
    out = runs["keep"]
    src = pydicom.dcmread(dicom_series[1][0], stop_before_pixels=True)
    for name in ("lesions_seg.dcm", "lesions_sr.dcm"):
        ds = pydicom.dcmread(out / name)
        assert str(ds.PatientName) == name_ and ds.PatientID == id_
        assert ds.PatientBirthDate == birth
        assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert id_.encode() in (out / "summary.json").read_bytes()


def test_no_dicom_outputs_for_a_nifti_input(tmp_path, phantom):
    from calcinosis.cli import main
    from calcinosis.io import write_volume

    image = write_volume(phantom.volume, tmp_path / "ct.nii.gz")
    assert main(["analyze", str(image), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {"lesions.csv", "lesions.nii.gz", "summary.json"}


def test_sr_without_deposits_is_valid_and_empty(dicom_series, tmp_path):
    from calcinosis.report.dicom_seg import source_headers
    from calcinosis.report.dicom_sr import build_measurement_report, write_sr

    volume = read_volume(dicom_series[0])
    sources = source_headers(volume)
    path = write_sr(build_measurement_report(volume, [], None, sources), tmp_path / "sr.dcm")
    sr = hd.sr.srread(path)
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    (group,) = sr.content.get_image_measurement_groups()
    (evaluation,) = group.get_qualitative_evaluations()
    assert evaluation.value == codes.SCT.Absent
    assert sr.PatientID == "ANONYMOUS"


def test_sr_of_a_single_deposit_references_its_segment(analysis, tmp_path):
    # highdicom writes a one-segment SEG's identification once, in the shared functional
    # groups, where its ReferencedSegment.from_segmentation did not look: no SR was written
    # for any DICOM study with exactly one deposit.
    from calcinosis.report.dicom_seg import build_segmentation, source_headers
    from calcinosis.report.dicom_sr import build_measurement_report, write_sr

    first = analysis.lesions[0]
    labels = np.where(analysis.labels == first.lesion_id, first.lesion_id, 0).astype(analysis.labels.dtype)
    sources = source_headers(analysis.volume)
    seg = build_segmentation(analysis.volume, labels, [first], sources=sources)
    sr = hd.sr.srread(write_sr(build_measurement_report(analysis.volume, [first], seg, sources), tmp_path / "sr.dcm"))
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    ref = group.referenced_segment
    assert [int(n) for n in ref.referenced_segment_numbers] == [first.lesion_id]
    assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
    # It names the CT slices the deposit lies on, as from_segmentation does for several segments.
    slices = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
              for f in seg.PerFrameFunctionalGroupsSequence}
    assert {s.referenced_sop_instance_uid for s in ref.source_images_for_segmentation} == slices


def test_seg_refuses_labels_off_the_grid(analysis):
    from calcinosis.report.dicom_seg import build_segmentation

    with pytest.raises(ValueError, match="shape"):
        build_segmentation(analysis.volume, analysis.labels[:-1], analysis.lesions)


def _copy_series(folder, dest, edit):
    """A copy of the series with ``edit(dataset)`` applied to each file's dataset (not its
    file meta), as an anonymiser may leave it."""
    dest.mkdir()
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(dest / path.name, enforce_file_format=True)
    return dest


def test_sop_uids_emptied_in_the_dataset_are_taken_from_the_file_meta(dicom_series, tmp_path):
    from calcinosis.cli import main

    def blank_sop_uids(ds):
        ds.SOPClassUID = ""
        ds.SOPInstanceUID = ""

    folder = _copy_series(dicom_series[0], tmp_path / "ct", blank_sop_uids)
    stored = {pydicom.dcmread(p).file_meta.MediaStorageSOPInstanceUID for p in folder.iterdir()}
    assert main(["analyze", str(folder), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    seg = hd.seg.segread(tmp_path / "out" / "lesions_seg.dcm")
    referenced = {ref.ReferencedSOPInstanceUID for ref in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced and referenced <= stored


def test_missing_study_uid_skips_seg_and_sr_with_a_one_line_warning(dicom_series, tmp_path):
    import json

    from calcinosis.cli import main

    def blank_study_and_series(ds):
        ds.StudyInstanceUID = ""
        ds.SeriesInstanceUID = ""

    folder = _copy_series(dicom_series[0], tmp_path / "ct", blank_study_and_series)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "--out", str(out), "--no-report"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"lesions.csv", "lesions.nii.gz", "summary.json"}
    warnings = [w for w in json.loads((out / "summary.json").read_text())["warnings"] if "SEG/SR" in w]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "StudyInstanceUID" in warnings[0] and "SeriesInstanceUID" in warnings[0]


def test_other_series_descriptions_stay_out_of_summary_and_report(analysis):
    # The warning naming a folder's other CT series quoted their SeriesDescription (free text,
    # which the SEG and SR leave out as it can hold the patient's name) in summary.json and
    # report.html, without --keep-identifiers.
    import json
    from dataclasses import replace

    from calcinosis.pipeline import _acquisition_warnings
    from calcinosis.report.html import render_report
    from calcinosis.report.summary import build_summary

    other = [{"series_uid": "1.2.3.4", "slices": 7, "description": "Zyxwquist recon"}]
    volume = analysis.volume.with_array(analysis.volume.array, other_ct_series=other)
    named = replace(analysis, volume=volume, warnings=(*analysis.warnings, *_acquisition_warnings(volume)))
    summary = build_summary(named)
    assert "1.2.3.4 (7 slices)" in json.dumps(summary)  # still named, for --series
    assert "Zyxwquist" not in json.dumps(summary)
    assert "Zyxwquist" not in render_report(summary, named.lesions)
    assert "1.2.3.4 (7 slices, Zyxwquist recon)" in json.dumps(build_summary(named, keep_identifiers=True))


def test_a_source_gone_before_the_seg_is_named_without_its_folders(analysis, tmp_path):
    # The warning quoted the file's whole path (twice) into summary.json: the folders above a
    # series are often named after the patient.
    import json
    from dataclasses import replace

    from calcinosis.outputs import OutputOptions, write_analysis

    gone = tmp_path / "Zyxwquist_Jane" / "ct"
    files = [str(gone / f"IM{k:05d}.dcm") for k in range(analysis.volume.shape[0])]
    moved = replace(analysis, volume=analysis.volume.with_array(analysis.volume.array, dicom_files=files))
    write_analysis(moved, tmp_path / "out", OutputOptions(report=False))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (warning,) = [w for w in summary["warnings"] if "SEG/SR not written" in w]
    assert "IM00000.dcm" in warning and "No such file" in warning
    assert "Zyxwquist" not in json.dumps(summary)
