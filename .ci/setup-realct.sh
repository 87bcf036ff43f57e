#!/usr/bin/env bash
# Real abdominal CT series for tests/ct/test_real_abdomen.py: the example CT that the source
# distribution of TotalSegmentator 2.9.0 on PyPI carries (Apache-2.0;
# tests/reference_files/example_ct_dicom: 20 slices, 512 x 512, 3 mm thick every 2 mm; and
# example_ct.nii.gz: an abdomen to the hips resampled to 3 mm voxels).
# Downloaded from PyPI (pip download, hash checked), never copied into the repository.
# Exits 0 where it cannot fetch it (no network); the test then skips with a reason.
set -u
DEST="${CALCINOSIS_REAL_CT_CACHE:-$HOME/.cache/calcinosis/real-ct}"
SERIES="$DEST/totalsegmentator-2.9.0/example_ct_dicom"
VOLUME="$DEST/totalsegmentator-2.9.0/example_ct.nii.gz"
[ -d "$SERIES" ] && [ "$(ls "$SERIES" | wc -l)" = 20 ] && [ -f "$VOLUME" ] && exit 0
SHA256=ce6240dc42b6a483a4280935b7afac6b55cba735a351a37a9fa63fe56b03bd7d
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if ! python3 -m venv "$WORK/venv" >/dev/null 2>&1 || \
   ! "$WORK/venv/bin/pip" download -q --no-deps --no-binary :all: "totalsegmentator==2.9.0" -d "$WORK" \
     >/dev/null 2>&1; then
  echo "setup-realct: could not download totalsegmentator 2.9.0 from PyPI; the real abdominal CT test will skip"
  exit 0
fi
SDIST="$WORK/totalsegmentator-2.9.0.tar.gz"
if [ "$(sha256sum "$SDIST" | cut -d' ' -f1)" != "$SHA256" ]; then
  echo "setup-realct: totalsegmentator-2.9.0.tar.gz has an unexpected hash; not used"
  exit 0
fi
tar -xzf "$SDIST" -C "$WORK" totalsegmentator-2.9.0/tests/reference_files/example_ct_dicom \
  totalsegmentator-2.9.0/tests/reference_files/example_ct.nii.gz
mkdir -p "$(dirname "$SERIES")"
rm -rf "$SERIES" "$VOLUME"
mv "$WORK/totalsegmentator-2.9.0/tests/reference_files/example_ct_dicom" "$SERIES"
mv "$WORK/totalsegmentator-2.9.0/tests/reference_files/example_ct.nii.gz" "$VOLUME"
echo "setup-realct: $SERIES, $VOLUME"
exit 0
