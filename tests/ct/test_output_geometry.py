"""The CT output contract read as another tool reads it: each lesion's x/y/z in lesions.csv is
its centroid in the label map placed by lesions.nii.gz's own NIfTI header (sform, RAS turned
to LPS), and each DICOM SEG pixel, placed by the SEG's own plane positions, lies on a voxel of
its lesion in that map; for a DICOM input stored flipped (left-handed: the reader reorders its
slices) and for an oblique one."""

from __future__ import annotations

import csv
import gzip
import struct

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from calcinosis.cli import main
from calcinosis.io import write_dicom_series
from calcinosis.phantom import make_ct_phantom
from calcinosis.volume import Volume

# How far (in voxels, along each image axis) a lesion's centroid in lesions.csv may lie from the
# one a reader computes on the label map: the CSV's also weighs the partial volume on the slices
# above and below and the background of the mass, so the two differ a little (about 0.1 voxel).
CENTROID_TOLERANCE_VOXELS = 0.35
# NIfTI-1 uint8/uint16 codes and the numpy types they hold.
NIFTI_TYPES = {2: np.uint8, 512: np.uint16}


def _flipped_rows(vol: Volume) -> Volume:
    """The same voxels stored with the rows reversed: a left-handed grid, every voxel in its place."""
    corner = vol.index_to_lps(np.array([0.0, vol.shape[1] - 1, 0.0]))
    return Volume(vol.array[:, ::-1, :].copy(), vol.spacing, tuple(corner), vol.direction @ np.diag([1.0, -1.0, 1.0]),
                  dict(vol.metadata))


def _oblique(vol: Volume) -> Volume:
    a, b = np.deg2rad(20.0), np.deg2rad(10.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rot = rot @ np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    return Volume(vol.array, vol.spacing, (-30.0, 12.5, 100.0), rot, dict(vol.metadata))


@pytest.fixture(scope="module")
def phantom():
    return make_ct_phantom("thighs", seed=3, noise_hu=15.0, slice_thickness_mm=2.0, length_mm=30, pixel_mm=1.2)


@pytest.fixture(scope="module", params=["flipped_rows", "oblique"])
def run(request, phantom, tmp_path_factory):
    vol = {"flipped_rows": _flipped_rows, "oblique": _oblique}[request.param](phantom.volume)
    root = tmp_path_factory.mktemp(request.param)
    write_dicom_series(vol, root / "ct")
    assert main(["analyze", str(root / "ct"), "--out", str(root / "out"), "--no-report"]) == 0
    return root / "ct", root / "out"


def _read_nifti(path):
    """Voxels ``[i, j, k]`` and the voxel-to-RAS affine of a NIfTI-1 file, read from its header
    bytes as a NIfTI reader does (the sform, which nibabel takes when its code is set)."""
    raw = gzip.decompress(path.read_bytes())
    assert struct.unpack_from("<i", raw, 0)[0] == 348
    dims = struct.unpack_from("<8h", raw, 40)
    datatype = struct.unpack_from("<h", raw, 70)[0]
    vox_offset = int(struct.unpack_from("<f", raw, 108)[0])
    assert struct.unpack_from("<h", raw, 254)[0] > 0, "no sform"
    affine = np.eye(4)
    affine[:3] = np.array(struct.unpack_from("<12f", raw, 280), float).reshape(3, 4)
    shape = dims[1:1 + dims[0]]
    count = int(np.prod(shape))
    data = np.frombuffer(raw, NIFTI_TYPES[datatype], count, vox_offset).reshape(shape, order="F")
    return data, affine


def _source_hu(series):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    return reader.Execute()


def test_csv_centroids_are_the_label_maps_centroids_in_its_own_geometry(run):
    series, out = run
    with open(out / "lesions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 5
    labels, affine = _read_nifti(out / "lesions.nii.gz")
    source = _source_hu(series)
    # The label map lies on the source's grid as a DICOM reader builds it.
    written = sitk.ReadImage(str(out / "lesions.nii.gz"))
    assert written.GetSize() == source.GetSize()
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-5)
    hu = sitk.GetArrayFromImage(source).transpose(2, 1, 0).astype(float)  # [i, j, k] like the NIfTI voxels
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    to_index = np.linalg.inv(affine[:3, :3])
    ids = sorted(int(v) for v in np.unique(labels) if v)
    assert ids == [int(r["lesion_id"]) for r in rows]
    for row in rows:
        ijk = np.argwhere(labels == int(row["lesion_id"]))
        assert len(ijk) == int(row["n_voxels"])
        weights = np.clip(hu[tuple(ijk.T)] - float(row["background_hu"]), 1e-3, None)
        centre = (ijk * weights[:, None]).sum(0) / weights.sum()
        expected_lps = ras_to_lps @ (affine[:3, :3] @ centre + affine[:3, 3])
        got_lps = np.array([float(row["x_mm"]), float(row["y_mm"]), float(row["z_mm"])])
        off_voxels = np.abs(to_index @ (ras_to_lps @ (got_lps - expected_lps)))
        assert off_voxels.max() < CENTROID_TOLERANCE_VOXELS, (row["lesion_id"], got_lps, expected_lps)


def test_seg_pixels_lie_on_their_lesions_voxels(run):
    series, out = run
    labels, affine = _read_nifti(out / "lesions.nii.gz")
    lps_to_index = np.linalg.inv(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine)
    seg = hd.seg.segread(out / "lesions_seg.dcm")
    sources = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p, stop_before_pixels=True)
                                                for p in series.iterdir())}
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    row_step, column_step = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    frames = seg.pixel_array.reshape((-1, seg.Rows, seg.Columns))
    placed = 0
    for frame, groups in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        position = np.array(groups.PlanePositionSequence[0].ImagePositionPatient, float)
        source_uid = groups.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = sources[source_uid]
        # The frame sits on the CT slice it says it derives from.
        np.testing.assert_allclose(np.array(source.ImagePositionPatient, float), position, atol=1e-3)
        np.testing.assert_allclose(np.array(source.ImageOrientationPatient, float), orientation, atol=1e-6)
        ident = groups.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        number = int(ident[0].ReferencedSegmentNumber)
        rc = np.argwhere(frame > 0)
        lps = position + rc[:, 1:2] * column_step * orientation[:3] + rc[:, 0:1] * row_step * orientation[3:]
        ijk = np.rint((np.c_[lps, np.ones(len(lps))] @ lps_to_index.T)[:, :3]).astype(int)
        assert (labels[tuple(ijk.T)] == number).all(), number
        placed += len(rc)
    assert placed == int((labels > 0).sum())
