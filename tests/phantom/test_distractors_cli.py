"""Distractors are dense but recorded apart from deposits; the phantom subcommand writes a phantom."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.errors import InputError
from calcinosis.phantom import make_ct_phantom
from calcinosis.phantom.cli import register_phantom_command

ALL = ("vessels", "bowel", "cartilage", "necklace", "ecg_leads")


@pytest.fixture(scope="module")
def trunk_pair():
    kw = dict(seed=2, length_mm=45.0, noise_hu=10.0, external_objects=False)
    return make_ct_phantom("trunk", distractors=ALL, **kw), make_ct_phantom("trunk", **kw)


def test_every_distractor_kind_is_rendered_and_recorded(trunk_pair):
    ph, plain = trunk_pair
    kinds = {o.kind for o in ph.distractors}
    assert {"vessel_wall_calcification", "bowel_contrast", "costal_cartilage_calcification",
            "necklace_bead", "ecg_electrode"} <= kinds
    vol = ph.noiseless
    for o in ph.distractors:
        idx = tuple(np.round(vol.lps_to_index(np.array(o.centroid_lps))).astype(int))
        if o.kind in ("necklace_bead", "ecg_electrode", "bowel_contrast"):  # solid: dense at the centre
            assert vol.array[idx] > 200
    # distractors never become deposits, and deposits stay clear of them
    dep_mask = ph.labels > 0
    dens = [o for o in ph.distractors if o.hu >= 300]
    for o in dens:
        idx = tuple(np.round(vol.lps_to_index(np.array(o.centroid_lps))).astype(int))
        assert not dep_mask[idx]
    assert len(ph.deposits) >= 8


def test_metal_distractors_lie_outside_the_body(trunk_pair):
    ph, plain = trunk_pair
    body = plain.noiseless.array > -500
    extra = ph.noiseless.array - plain.noiseless.array
    metal = extra > 2000
    assert metal.sum() > 50
    assert not (metal & body).any()


def test_distractor_kind_checks():
    with pytest.raises(InputError):
        make_ct_phantom("thighs", distractors=("bowel",))
    with pytest.raises(InputError):
        make_ct_phantom("trunk", distractors=("piercing",))
    ph = make_ct_phantom("thighs", seed=1, distractors=("vessels",), length_mm=30.0, n_deposits=4)
    plaques = [o for o in ph.distractors if o.kind == "vessel_wall_calcification"]
    assert {np.sign(o.centroid_lps[0]) for o in plaques} == {-1.0, 1.0}  # both femoral arteries


def test_phantom_subcommand_writes_image_and_truth(tmp_path):
    parser = argparse.ArgumentParser()
    register_phantom_command(parser.add_subparsers(dest="command"))
    out = tmp_path / "ph"
    args = parser.parse_args(["phantom", "--body-part", "elbow", "--seed", "7", "--noise-hu", "12",
                              "--slice-mm", "2", "--pixel-mm", "0.9", "--length-mm", "20", "--format", "mha",
                              "--out", str(out)])
    assert args.func(args) == 0
    img = sitk.ReadImage(str(out / "phantom.mha"))
    assert img.GetSize()[2] == 10 and np.allclose(img.GetSpacing(), (0.9, 0.9, 2.0))
    truth = json.loads((out / "truth.json").read_text())
    assert truth["body_part"] == "elbow" and truth["settings"]["noise_hu"] == 12.0
    assert all(d["region"] == "elbow" for d in truth["deposits"])


@pytest.mark.parametrize("extra, words", [
    (["--table-gap-mm", "-1"], "table_gap_mm"),
    (["--length-mm", "3", "--slice-mm", "3"], "no room for deposits"),
    # Each of these was an internal error or ran on and on.
    (["--seed", "-5"], "seed must be"),
    (["--matrix", "100000"], "matrix must be"),
    (["--deposits", "100000"], "n_deposits must be at most"),
    (["--length-mm", "2000", "--slice-mm", "0.3"], "more than the generator makes"),
    (["--limb-side", "right"], "elbow and fingers phantoms only"),  # was ignored without a word
])
def test_phantom_subcommand_bad_settings_exit_2_with_one_line(tmp_path, capsys, extra, words):
    from calcinosis.cli import main
    out = tmp_path / "ph"
    assert main(["phantom", "--body-part", "thighs", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not out.exists()


def test_phantom_subcommand_table_gap_is_drawn_as_asked(tmp_path):
    from calcinosis.cli import main
    out = tmp_path / "ph"
    assert main(["phantom", "--body-part", "thighs", "--length-mm", "20", "--slice-mm", "3",
                 "--table-gap-mm", "0.6", "--out", str(out)]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["table"]["air_gap_mm"] == 0.6 and truth["settings"]["table_gap_mm"] == 0.6


def test_phantom_subcommand_truth_is_the_library_truth_on_the_written_geometry(tmp_path):
    from calcinosis.cli import main
    out = tmp_path / "ph"
    assert main(["phantom", "--body-part", "elbow", "--limb-side", "right", "--seed", "11", "--slice-mm", "2.5",
                 "--pixel-mm", "0.9", "--length-mm", "30", "--noise-hu", "12", "--out", str(out)]) == 0
    truth = json.loads((out / "truth.json").read_text())
    ph = make_ct_phantom("elbow", seed=11, slice_thickness_mm=2.5, pixel_mm=0.9, length_mm=30, noise_hu=12,
                         limb_side="right", keep_noiseless=False)
    assert truth == json.loads(json.dumps(ph.truth_dict()))
    img = sitk.ReadImage(str(out / "phantom.nii.gz"))
    geo = truth["geometry"]
    assert np.allclose(img.GetOrigin(), geo["origin_lps_mm"], atol=1e-3)
    assert np.allclose(img.GetSpacing(), geo["spacing_xyz_mm"], atol=1e-6)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), geo["direction"])
    assert np.array_equal(sitk.GetArrayFromImage(img), ph.volume.array)
    labels = sitk.ReadImage(str(out / "truth_labels.nii.gz"))
    lab = sitk.GetArrayFromImage(labels)
    for d in truth["deposits"]:
        idx = np.argwhere(lab == d["id"]).mean(axis=0)[::-1]
        p = labels.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx])
        off = np.array(p) - d["centroid_lps"]
        # a small deposit's ideal mask can sit in one 2.5 mm slice: z within half a slice
        assert np.linalg.norm(off[:2]) < 0.5 and abs(off[2]) <= 1.25
        assert d["side"] == "right" and p[0] < 0  # the patient's right is -x in LPS


def test_a_phantom_stopped_while_writing_leaves_no_part_of_it(tmp_path, monkeypatch, capsys):
    # Ctrl-C after the image was written left phantom.nii.gz without its truth.json (and an
    # empty --out when it came before): over an earlier phantom, beside that one's truth.
    import calcinosis.phantom.io as phantom_io
    from calcinosis.cli import main

    out = tmp_path / "ph"
    argv = ["phantom", "--out", str(out), "--length-mm", "12", "--slice-mm", "3", "--no-table"]
    assert main(argv) == 0 and (out / "truth.json").is_file()

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(phantom_io, "write_json", interrupted)
    assert main([*argv, "--seed", "1"]) == 130
    assert sorted(p.name for p in out.iterdir()) == []
    fresh = tmp_path / "fresh"
    assert main(["phantom", "--out", str(fresh), "--length-mm", "12", "--slice-mm", "3"]) == 130
    assert not fresh.exists()
    assert capsys.readouterr().err.count("calcinosis phantom: interrupted") == 2
