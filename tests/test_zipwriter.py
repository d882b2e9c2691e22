"""CompactZipFile writes byte for byte what zipfile writes, without keeping a ZipInfo per
member (requests_app/evidence/zipwriter.py)."""

import io
import zipfile

import pytest

from requests_app.evidence.zipwriter import CompactZipFile


def write(cls, members, **kwargs):
    buffer = io.BytesIO()
    with cls(buffer, "w", allowZip64=True, **kwargs) as zf:
        for name, data, compress, zip64 in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 30, 12, 34, 56))
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=zip64) as out:
                out.write(data)
        zf.comment = b"made by a test"
    return buffer.getvalue()


def test_the_same_bytes_as_zipfile():
    members = [
        ("README.txt", b"hello " * 1000, zipfile.ZIP_DEFLATED, True),
        ("devices/d1/iothub-twin.json", b'{"a": 1}', zipfile.ZIP_STORED, False),
        ("devices/d1/modules/m\u00e9ter.json", b"{}", zipfile.ZIP_DEFLATED, True),  # UTF-8 name
        ("empty.json", b"", zipfile.ZIP_DEFLATED, False),
    ]
    compact = write(CompactZipFile, members)
    assert compact == write(zipfile.ZipFile, members)
    with zipfile.ZipFile(io.BytesIO(compact)) as zf:
        assert zf.testzip() is None and zf.read("README.txt") == b"hello " * 1000


def test_more_members_than_a_zip_can_count_without_zip64():
    """Past 65,535 members the end records are zip64: still zipfile's bytes."""
    members = [(f"f{i}", b"", zipfile.ZIP_STORED, False) for i in range(65_540)]
    compact = write(CompactZipFile, members)
    assert compact == write(zipfile.ZipFile, members)
    with zipfile.ZipFile(io.BytesIO(compact)) as zf:
        assert len(zf.infolist()) == 65_540


def test_only_for_writing():
    with pytest.raises(ValueError, match="only writes"):
        CompactZipFile(io.BytesIO(), "a")
