"""Bundles: one deterministic zip in, a checked manifest and model out, or a reason."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.models.bundle import MAX_BUNDLE_BYTES, Bundle, pack_bundle, read_bundle
from ldt.models.manifest import ModelError
from ldt.models.tflite_writer import write_mlp
from tests.models.factories import manifest, random_mlp, zip_of

TFLITE = write_mlp(random_mlp(0, [12, 8, 1]))


def test_pack_then_read_gives_back_the_manifest_and_model() -> None:
    m = manifest()
    data = pack_bundle(m, TFLITE)
    bundle = read_bundle(data)
    assert bundle.manifest == m
    assert bundle.tflite == TFLITE
    assert bundle.sha256 == hashlib.sha256(TFLITE).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["manifest.json", "model.tflite"]


def test_packing_is_deterministic() -> None:
    assert pack_bundle(manifest(), TFLITE) == pack_bundle(manifest(), TFLITE)


def test_a_file_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(ModelError, match=r"bundle is not a valid zip file"):
        read_bundle(b"PK\x03\x04 definitely not a zip")


@pytest.mark.parametrize(
    ("members", "says"),
    [
        (
            {"manifest.json": b"{}", "model.tflite": TFLITE, "README.md": b"hi"},
            "bundle has unexpected member(s) 'README.md'",
        ),
        (
            {"manifest.json": b"{}", "model.tflite": TFLITE, "x/": b""},
            "bundle has unexpected member(s) 'x/'",
        ),
        ({"manifest.json": manifest().to_json()}, "bundle is missing model.tflite"),
        ({"model.tflite": TFLITE}, "bundle is missing manifest.json"),
    ],
)
def test_members_other_than_manifest_and_model_are_refused(
    members: dict[str, bytes], says: str
) -> None:
    with pytest.raises(ModelError, match="^" + re.escape(says)):
        read_bundle(zip_of(members))


def test_a_member_twice_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("manifest.json", manifest().to_json())
        zf.writestr("model.tflite", TFLITE)
        with pytest.warns(UserWarning, match=r"Duplicate name"):
            zf.writestr("model.tflite", TFLITE)
    with pytest.raises(ModelError, match=r"bundle has a member twice"):
        read_bundle(out.getvalue())


def test_a_model_over_the_manifest_limit_is_refused_before_it_is_inflated() -> None:
    small = manifest(limits={"max_model_bytes": 1000})
    with pytest.raises(
        ModelError, match=r"over the manifest's limit of 1,000 \(limits.max_model_bytes\)"
    ):
        pack_bundle(small, TFLITE)
    data = zip_of({"manifest.json": small.to_json(), "model.tflite": TFLITE})
    with pytest.raises(
        ModelError, match=r"model.tflite inflates to [\d,]+ bytes, over the manifest's limit"
    ):
        read_bundle(data)


def test_a_zip_bomb_is_refused_from_its_header() -> None:
    # 64 MiB of zeros deflate to ~64 KB; the header's size is checked before inflating
    bomb = b"\0\0\0\0TFL3" + bytes(64 << 20)
    data = zip_of({"manifest.json": manifest().to_json(), "model.tflite": bomb})
    assert len(data) < 200_000
    with pytest.raises(ModelError, match=r"model.tflite inflates to 67,108,872 bytes, over"):
        read_bundle(data)


def _lie_about_size(data: bytes, member: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size of ``member`` in the central directory."""
    at = data.rindex(b"PK\x01\x02", 0, data.rindex(member))
    return data[: at + 24] + struct.pack("<I", size) + data[at + 28 :]


def test_a_member_larger_than_its_header_says_is_refused() -> None:
    big = b"\0\0\0\0TFL3" + bytes(10 << 20)  # over the default 4 MiB limit
    data = zip_of({"manifest.json": manifest().to_json(), "model.tflite": big})
    lying = _lie_about_size(data, b"model.tflite", 1000)
    with pytest.raises(ModelError, match=r"^bundle is not a valid zip file: Bad CRC-32"):
        read_bundle(lying)


def test_a_bundle_over_the_absolute_limit_is_refused_unread() -> None:
    with pytest.raises(ModelError, match=r"bundle is [\d,]+ bytes, over the limit"):
        read_bundle(bytes(MAX_BUNDLE_BYTES + 1))


@pytest.mark.parametrize(
    "tflite",
    [b"", b"TFL3", bytes(range(256)), b"\x1c\0\0\0TFL2" + TFLITE[8:]],
    ids=["empty", "short", "random", "wrong-identifier"],
)
def test_a_model_that_is_not_tflite_is_refused(tflite: bytes) -> None:
    with pytest.raises(ModelError, match=r"model.tflite is not a TFLite model"):
        pack_bundle(manifest(), tflite)
    data = zip_of({"manifest.json": manifest().to_json(), "model.tflite": tflite})
    with pytest.raises(ModelError, match=r"model.tflite is not a TFLite model"):
        read_bundle(data)


def test_an_invalid_manifest_in_a_bundle_is_refused_with_the_reason() -> None:
    data = zip_of({"manifest.json": b'{"name": "x"}', "model.tflite": TFLITE})
    with pytest.raises(
        ModelError, match=r"^manifest is invalid: version is required; license is required"
    ):
        read_bundle(data)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.data())
def test_damaged_bundles_are_refused_or_read_never_crash(data: st.DataObject) -> None:
    blob = bytearray(pack_bundle(manifest(), TFLITE))
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        bundle = read_bundle(bytes(blob[:cut] if data.draw(st.booleans()) else blob))
    except ModelError:
        return
    assert isinstance(bundle, Bundle)
