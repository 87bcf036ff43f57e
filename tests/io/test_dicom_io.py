"""DICOM series writing and reading: round trips, geometry, metadata and the writer's IOD."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from calcinosis.io import list_dicom_series, read_dicom_slice_hu, read_volume, write_dicom_series

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def test_round_trip_gives_identical_array_geometry_and_metadata(tmp_path, make_phantom, tree_hash):
    vol = make_phantom()
    files = write_dicom_series(
        vol, tmp_path / "ct", series_uid="1.2.3.4.5", study_uid="1.2.3.4", kvp=100.0,
        slice_thickness_mm=3.0, convolution_kernel="B30f", contrast_agent="Iohexol",
        patient_name="Doe^Jane", patient_id="ID42",
    )
    before = tree_hash(tmp_path / "ct")
    back = read_volume(tmp_path / "ct")
    assert tree_hash(tmp_path / "ct") == before
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing, vol.spacing, rtol=1e-12)
    np.testing.assert_allclose(back.origin, vol.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-12)
    meta = back.metadata
    assert meta["modality"] == "CT" and meta["source_format"] == "dicom"
    assert meta["kvp"] == 100.0 and meta["slice_thickness_mm"] == 3.0
    assert meta["convolution_kernel"] == "B30f" and meta["contrast_agent"] == "Iohexol"
    assert meta["series_uid"] == "1.2.3.4.5" and meta["study_uid"] == "1.2.3.4"
    assert meta["frame_of_reference_uid"] and meta["study_date"] and meta["manufacturer"]
    assert meta["source_path"] == str(tmp_path / "ct")
    assert meta["dicom_files"] == [str(f) for f in files]
    assert meta["sop_instance_uids"] == [pydicom.dcmread(f).SOPInstanceUID for f in files]
    assert len(set(meta["sop_instance_uids"])) == len(files)
    assert meta["identifiers"] == {"patient_name": "Doe^Jane", "patient_id": "ID42", "patient_birth_date": "19700101"}
    flat = {k: v for k, v in meta.items() if k != "identifiers"}
    assert "Doe^Jane" not in repr(flat) and "ID42" not in repr(flat)


def test_no_contrast_agent_is_reported_as_none(tmp_path, make_phantom):
    write_dicom_series(make_phantom(), tmp_path)
    assert read_volume(tmp_path).metadata["contrast_agent"] is None


@pytest.mark.parametrize("agent, read", [("NONE", None), (" none ", None), ("No contrast", None), ("N/A", None),
                                         ("  ", None), ("Omnipaque 350", "Omnipaque 350")])
def test_a_contrast_agent_field_saying_none_is_no_agent(tmp_path, make_phantom, agent, read):
    # Sites write "NONE" for a scan without contrast: the analysis warned "contrast agent (NONE):
    # enhancing vessels and organs can mimic calcification".
    write_dicom_series(make_phantom(), tmp_path, contrast_agent=agent)
    assert read_volume(tmp_path).metadata["contrast_agent"] == read


@pytest.mark.parametrize("name", ["identity", "oblique20x", "oblique35z_20x", "flip_x", "flip_yz", "flip_z_oblique"])
def test_marked_voxel_keeps_its_lps_position_through_dicom(tmp_path, make_phantom, directions, mark, name):
    index, value = mark
    vol = make_phantom(directions[name])
    write_dicom_series(vol, tmp_path)
    back = read_volume(tmp_path)
    found = np.argwhere(back.array == value)
    assert len(found) == 1
    np.testing.assert_allclose(back.index_to_lps(found[0]), vol.index_to_lps(index), atol=1e-6)
    # Direction columns are (row cosine, column cosine, normal): right-handed whatever was written.
    assert np.linalg.det(back.direction) == pytest.approx(1.0)
    np.testing.assert_allclose(back.direction[:, :2], vol.direction[:, :2], atol=1e-9)
    # Every voxel lands at the same place: compare the whole arrays in LPS order.
    if np.linalg.det(vol.direction) > 0:
        np.testing.assert_array_equal(back.array, vol.array)
    else:  # left-handed input: slices come back sorted along the normal, i.e. reversed
        np.testing.assert_array_equal(back.array, vol.array[::-1])


def test_written_files_carry_the_ct_image_attributes(tmp_path, make_phantom):
    files = write_dicom_series(make_phantom(), tmp_path, kvp=135.0)
    ds = pydicom.dcmread(files[4])
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == CT_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    for keyword in (
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
        "AccessionNumber", "ReferringPhysicianName", "StudyID", "StudyInstanceUID", "SeriesInstanceUID",
        "SeriesNumber", "Modality", "FrameOfReferenceUID", "PositionReferenceIndicator", "Manufacturer",
        "InstanceNumber", "ImageType", "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
        "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "RescaleIntercept",
        "RescaleSlope", "KVP", "AcquisitionNumber", "PixelSpacing", "ImageOrientationPatient",
        "ImagePositionPatient", "SliceThickness", "PatientPosition", "ConvolutionKernel", "PixelData",
    ):
        assert keyword in ds, keyword
    assert ds.InstanceNumber == 5 and ds.KVP == 135.0
    assert (ds.Rows, ds.Columns) == (20, 24)
    assert [float(v) for v in ds.PixelSpacing] == [0.8, 0.7]  # (between rows, between columns)
    assert ds.PixelRepresentation == 0 and float(ds.RescaleIntercept) == -1024.0
    np.testing.assert_array_equal(ds.pixel_array.astype(int) - 1024, make_phantom().array[4])


def test_writer_is_deterministic_given_uids(tmp_path, make_phantom, tree_hash):
    vol = make_phantom()
    a = write_dicom_series(vol, tmp_path / "a", series_uid="1.2.3", study_uid="1.2")
    b = write_dicom_series(vol, tmp_path / "b", series_uid="1.2.3", study_uid="1.2")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_values_below_the_intercept_are_stored_signed(tmp_path, make_phantom):
    vol = make_phantom()
    padded = vol.with_array(np.where(vol.array == -1000, -3024, vol.array).astype(np.int16))
    files = write_dicom_series(padded, tmp_path)
    assert pydicom.dcmread(files[0]).PixelRepresentation == 1
    np.testing.assert_array_equal(read_volume(tmp_path).array, padded.array)


def test_per_slice_rescale_values_are_applied(tmp_path, make_phantom):
    vol = make_phantom()
    files = write_dicom_series(vol, tmp_path)
    # Re-encode slice 2 with another intercept and slice 6 with slope 2 (even HU only).
    ds = pydicom.dcmread(files[2])
    ds.RescaleIntercept = "-2048"
    ds.PixelData = (vol.array[2].astype(np.int32) + 2048).astype("<u2").tobytes()
    ds.save_as(files[2])
    expected = vol.array.copy()
    expected[6] = (expected[6] // 2) * 2
    ds = pydicom.dcmread(files[6])
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
    ds.PixelData = ((expected[6].astype(np.int32) + 1024) // 2).astype("<u2").tobytes()
    ds.save_as(files[6])
    np.testing.assert_array_equal(read_volume(tmp_path).array, expected)


def test_compressed_series_is_decoded(tmp_path, make_phantom):
    vol = make_phantom()
    files = write_dicom_series(vol, tmp_path)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(RLELossless)
        ds.save_as(f)
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_volume(tmp_path).array, vol.array)


def test_nested_layout_two_series_and_junk(tmp_path, make_phantom, tree_hash):
    big = make_phantom()
    small = make_phantom(shape=(6, 20, 24), origin=(0.0, 0.0, 500.0))
    write_dicom_series(big, tmp_path / "study" / "a" / "b", series_uid="1.2.840.1.2", study_uid="1.2.840.1")
    write_dicom_series(small, tmp_path / "study" / "c", series_uid="1.2.840.1.1", study_uid="1.2.840.1")
    (tmp_path / "README.txt").write_text("not dicom")
    (tmp_path / "study" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    before = tree_hash(tmp_path)

    series = list_dicom_series(tmp_path)
    assert [(s.series_uid, s.modality, s.n_files) for s in series] == [
        ("1.2.840.1.1", "CT", 6), ("1.2.840.1.2", "CT", 12)
    ]
    assert all(s.study_uid == "1.2.840.1" and len(s.files) == s.n_files for s in series)
    assert all("/c/" in f for f in series[0].files)

    chosen = read_volume(tmp_path)
    assert chosen.metadata["series_uid"] == "1.2.840.1.2" and chosen.shape == (12, 20, 24)
    other = read_volume(tmp_path, series_uid="1.2.840.1.1")
    assert other.shape == (6, 20, 24) and other.origin[2] == pytest.approx(500.0)
    np.testing.assert_array_equal(other.array, small.array)
    assert tree_hash(tmp_path) == before


def test_highdicom_segmentation_accepts_written_series(tmp_path, make_phantom, directions, mark):
    hd = pytest.importorskip("highdicom")
    from pydicom.sr.codedict import codes

    files = write_dicom_series(make_phantom(directions["oblique20x"]), tmp_path)
    sources = [pydicom.dcmread(f) for f in files]
    mask = np.zeros((len(files), 20, 24), dtype=bool)
    mask[mark[0]] = True
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="deposit", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description], series_instance_uid=hd.UID(), series_number=2,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="calcinosis",
        manufacturer_model_name="test", software_versions="0", device_serial_number="0",
    )
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert seg.PatientID == "PHANTOM001" and seg.StudyInstanceUID == sources[0].StudyInstanceUID


def test_ct_small_slice_reads_as_plausible_hu(tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    hu, spacing = read_dicom_slice_hu(path)
    ds = pydicom.dcmread(path)
    assert hu.dtype == np.int16 and hu.shape == (ds.Rows, ds.Columns) == (128, 128)
    expected = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, expected)
    assert spacing == pytest.approx((float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])))
    assert hu.min() < -500 and hu.max() > 300  # air and bone of the spine slice


def test_ct_small_folder_is_a_single_slice(tmp_path, tree_hash):
    from pydicom.data import get_testdata_file

    from calcinosis.errors import InputError

    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "CT_small.dcm")
    before = tree_hash(tmp_path)
    with pytest.raises(InputError, match="single slice"):
        read_volume(tmp_path)
    with pytest.raises(InputError, match="single DICOM file"):
        read_volume(tmp_path / "CT_small.dcm")
    assert tree_hash(tmp_path) == before


@pytest.mark.parametrize("name", ["oblique35z_20x", "flip_yz"])
def test_reader_agrees_with_simpleitk_series_reader(tmp_path, make_phantom, directions, name):
    sitk = pytest.importorskip("SimpleITK")
    write_dicom_series(make_phantom(directions[name]), tmp_path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    reference = reader.Execute()
    ours = read_volume(tmp_path)
    np.testing.assert_array_equal(ours.array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(ours.spacing, reference.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(ours.origin, reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(ours.direction.ravel(), reference.GetDirection(), atol=1e-6)


@pytest.mark.parametrize("name", ["identity", "oblique35z_20x", "flip_yz"])
def test_enhanced_multiframe_ct_reads_as_the_series_it_was_converted_from(tmp_path, make_phantom, directions,
                                                                          enhanced_ct, tree_hash, name):
    # One multi-frame file, frames in reverse slice order: each frame placed by its functional
    # groups, sorted along the normal, read with the rescale of its group.
    vol = make_phantom(directions[name])
    files = write_dicom_series(vol, tmp_path / "single", kvp=100.0, convolution_kernel="B30f",
                               slice_thickness_mm=2.5)
    single = read_volume(tmp_path / "single")
    path = enhanced_ct(files, tmp_path / "multi" / "ct.dcm")
    before = tree_hash(tmp_path / "multi")
    multi = read_volume(tmp_path / "multi")
    assert tree_hash(tmp_path / "multi") == before
    np.testing.assert_array_equal(multi.array, single.array)
    np.testing.assert_allclose(multi.spacing, single.spacing, rtol=1e-9)
    np.testing.assert_allclose(multi.origin, single.origin, atol=1e-6)
    np.testing.assert_allclose(multi.direction, single.direction, atol=1e-9)
    meta = multi.metadata
    n = vol.shape[0]
    assert meta["dicom_files"] == [str(path)] * n
    assert meta["dicom_frames"] == list(range(n))[::-1]
    assert meta["kvp"] == 100.0 and meta["convolution_kernel"] == "B30f" and meta["slice_thickness_mm"] == 2.5
    assert "dicom_frames" not in single.metadata
    alone = read_volume(path)  # the file given on its own
    np.testing.assert_array_equal(alone.array, single.array)
    np.testing.assert_allclose(alone.origin, single.origin, atol=1e-6)
    assert alone.metadata["dicom_frames"] == meta["dicom_frames"]


def test_enhanced_ct_frame_rescale_overrides_the_shared_one(tmp_path, make_phantom, enhanced_ct):
    # Frame 1 stores its values 100 higher with an intercept 100 lower in its own Pixel Value
    # Transformation group: the same HU.
    vol = make_phantom()
    files = write_dicom_series(vol, tmp_path / "single")
    path = enhanced_ct(files, tmp_path / "multi" / "ct.dcm", reverse=False)
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    stored = ds.pixel_array.copy()
    stored[0] += 100
    ds.PixelData = stored.tobytes()
    own = pydicom.Dataset()
    own.RescaleSlope = shared.RescaleSlope
    own.RescaleIntercept = float(shared.RescaleIntercept) - 100
    own.RescaleType = "HU"
    ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence = pydicom.Sequence([own])
    ds.save_as(path)
    np.testing.assert_array_equal(read_volume(tmp_path / "multi").array, vol.array)


def test_compressed_enhanced_ct_is_decoded(tmp_path, make_phantom, enhanced_ct):
    vol = make_phantom()
    files = write_dicom_series(vol, tmp_path / "single")
    path = enhanced_ct(files, tmp_path / "multi" / "ct.dcm", transfer_syntax_uid=RLELossless)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_volume(path).array, vol.array)


def test_enhanced_ct_contrast_agent_from_its_code_sequence(tmp_path, make_phantom, enhanced_ct):
    # An Enhanced CT names its agent in the Enhanced Contrast/Bolus module's code sequence.
    files = write_dicom_series(make_phantom(), tmp_path / "single")
    path = enhanced_ct(files, tmp_path / "multi" / "ct.dcm")
    assert read_volume(path).metadata["contrast_agent"] is None
    ds = pydicom.dcmread(path)
    agent = pydicom.Dataset()
    agent.CodeValue, agent.CodingSchemeDesignator, agent.CodeMeaning = "C-B0322", "SRT", "Iohexol"
    ds.ContrastBolusAgentSequence = pydicom.Sequence([agent])
    ds.save_as(path)
    assert read_volume(path).metadata["contrast_agent"] == "Iohexol"


def test_a_compressed_slice_whose_name_is_not_utf8_is_read(tmp_path, make_phantom):
    # A file name in another encoding (Latin-1 "lat\xe9.dcm", from an old archive): GDCM's read
    # through SimpleITK aborted the whole process, without a message. Run apart, so that a
    # crash fails the test, not the run.
    import os
    import subprocess
    import sys

    vol = make_phantom()
    files = write_dicom_series(vol, tmp_path / "ct")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(RLELossless)
        ds.save_as(f)
    os.rename(files[3], os.path.join(os.fsencode(tmp_path / "ct"), b"lat\xe9.dcm"))
    np.save(tmp_path / "expected.npy", vol.array)
    code = ("import sys, numpy as np; from calcinosis.io import read_volume; "
            "v = read_volume(sys.argv[1]); print(np.array_equal(v.array, np.load(sys.argv[2])))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ct"), str(tmp_path / "expected.npy")],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr
