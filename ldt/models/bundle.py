"""A model bundle: one ``.ldtmodel`` file, a zip of ``manifest.json`` and ``model.tflite``.

One file, so the catalogue, the signed-artifact envelope and an operator's
``scp`` all move the same thing. A bundle comes from the network, so
``read_bundle`` trusts nothing in it: the members and their declared sizes are
checked before a byte is decompressed (a 1 KB zip may claim to inflate to
1 TB), and a size that lies is caught while reading, by a bounded read.
``pack_bundle`` runs the same checks and writes fixed timestamps and
permissions, so the same model gives the same bytes, and so the same SHA-256,
on every machine.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Final

from ldt.models.manifest import MAX_MODEL_BYTES, ModelError, ModelManifest, parse_manifest

__all__ = [
    "MANIFEST_MEMBER",
    "MAX_BUNDLE_BYTES",
    "MODEL_MEMBER",
    "Bundle",
    "check_tflite",
    "pack_bundle",
    "read_bundle",
]

MANIFEST_MEMBER: Final = "manifest.json"
MODEL_MEMBER: Final = "model.tflite"
_MAX_MANIFEST_BYTES: Final = 64 << 10
MAX_BUNDLE_BYTES: Final = MAX_MODEL_BYTES + _MAX_MANIFEST_BYTES + (4 << 10)
"""Largest bundle file accepted, compressed or not: the largest model, its manifest, zip headers."""
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can carry
_TFLITE_ID: Final = b"TFL3"


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle that passed every check; ``sha256`` is the hex digest of ``tflite``."""

    manifest: ModelManifest
    tflite: bytes
    sha256: str


def check_tflite(tflite: bytes, manifest: ModelManifest) -> None:
    """Refuse (``ModelError``) a model over the manifest's size limit or not a TFLite file.

    Only the file identifier is checked here; whether the flatbuffer is sound and
    matches the manifest is the interpreter's check (``LoadedModel.load``).
    """
    limit = manifest.limits.max_model_bytes
    if len(tflite) > limit:
        raise ModelError(
            f"model.tflite is {len(tflite):,} bytes, over the manifest's limit of {limit:,} "
            "(limits.max_model_bytes)"
        )
    if len(tflite) < 8 or tflite[4:8] != _TFLITE_ID:
        raise ModelError("model.tflite is not a TFLite model (no 'TFL3' file identifier)")


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix, so the permissions below are read as such everywhere
    info.external_attr = 0o644 << 16
    return info


def pack_bundle(manifest: ModelManifest, tflite: bytes) -> bytes:
    """The bundle file of ``manifest`` and ``tflite``; deterministic; raises ``ModelError``."""
    check_tflite(tflite, manifest)
    manifest_json = manifest.to_json()
    if len(manifest_json) > _MAX_MANIFEST_BYTES:
        raise ModelError(f"manifest.json would be over {_MAX_MANIFEST_BYTES:,} bytes")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(_member(MANIFEST_MEMBER), manifest_json, compresslevel=9)
        zf.writestr(_member(MODEL_MEMBER), tflite, compresslevel=9)
    return out.getvalue()


def _members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    expected = {MANIFEST_MEMBER, MODEL_MEMBER}
    if len(names) != len(set(names)):
        raise ModelError("bundle has a member twice; it must hold manifest.json and model.tflite")
    extra = sorted(set(names) - expected)
    if extra:
        raise ModelError(
            f"bundle has unexpected member(s) {', '.join(repr(n) for n in extra)}; "
            "it must hold only manifest.json and model.tflite"
        )
    missing = sorted(expected - set(names))
    if missing:
        raise ModelError(f"bundle is missing {', '.join(missing)}")
    for info in infos:
        if info.flag_bits & 0x1:
            raise ModelError(f"bundle member {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelError(
                f"bundle member {info.filename} uses an unsupported compression; "
                "use stored or deflated"
            )
    return {i.filename: i for i in infos}


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, whose: str) -> bytes:
    """The member's bytes, refusing more than ``limit`` whatever its header claims."""
    if info.file_size > limit:
        raise ModelError(
            f"{info.filename} inflates to {info.file_size:,} bytes, over {whose} of {limit:,} bytes"
        )
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ModelError(f"{info.filename} inflates to more than {whose} of {limit:,} bytes")
    return data


def read_bundle(data: bytes) -> Bundle:
    """Check and unpack a bundle file; raises ``ModelError`` naming what is wrong."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise ModelError(f"bundle is {len(data):,} bytes, over the limit of {MAX_BUNDLE_BYTES:,}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = _members(zf)
            manifest = parse_manifest(
                _read(zf, members[MANIFEST_MEMBER], _MAX_MANIFEST_BYTES, "the limit")
            )
            # the manifest's own limit bounds the model before it is decompressed
            tflite = _read(
                zf,
                members[MODEL_MEMBER],
                manifest.limits.max_model_bytes,
                "the manifest's limit (limits.max_model_bytes)",
            )
    except ModelError:
        raise
    except zipfile.BadZipFile as exc:
        raise ModelError(f"bundle is not a valid zip file: {exc}") from None
    # what zipfile raises on damaged headers, besides BadZipFile ("negative seek value", ...)
    except (ValueError, struct.error, zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise ModelError(f"bundle is damaged: {exc}") from None
    check_tflite(tflite, manifest)
    return Bundle(manifest=manifest, tflite=tflite, sha256=hashlib.sha256(tflite).hexdigest())
