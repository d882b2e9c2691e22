"""A ZIP writer whose memory does not grow with the number of members.

Python's ``zipfile.ZipFile`` keeps a ``ZipInfo`` object (and a name → info dict entry) for every
member until it writes the central directory on close: 16 MiB for the 40,302 members of a
10,000-device export. ``CompactZipFile`` encodes each member's central-directory record to bytes
(about 100 bytes) as soon as the next member is opened, and writes those bytes on close. The
records and the end records are encoded exactly as CPython 3.11's ``ZipFile._write_end_record``
encodes them (zip64 included); a test compares the bytes with ``zipfile``'s own.

Only for writing a new archive, member by member, with unique names (``zipfile``'s warning on a
duplicate name needs the name index this drops).
"""

from __future__ import annotations

import struct
import zipfile
from typing import IO, Any, Literal

# zipfile's own format constants (module-level in CPython, not in its __all__).
_z: Any = zipfile


def central_record(zinfo: zipfile.ZipInfo) -> bytes:
    """One member's central-directory record, as ``ZipFile._write_end_record`` writes it."""
    dt = zinfo.date_time
    dosdate = (dt[0] - 1980) << 9 | dt[1] << 5 | dt[2]
    dostime = dt[3] << 11 | dt[4] << 5 | (dt[5] // 2)
    extra = []
    if zinfo.file_size > _z.ZIP64_LIMIT or zinfo.compress_size > _z.ZIP64_LIMIT:
        extra.append(zinfo.file_size)
        extra.append(zinfo.compress_size)
        file_size = compress_size = 0xFFFFFFFF
    else:
        file_size, compress_size = zinfo.file_size, zinfo.compress_size
    if zinfo.header_offset > _z.ZIP64_LIMIT:
        extra.append(zinfo.header_offset)
        header_offset = 0xFFFFFFFF
    else:
        header_offset = zinfo.header_offset
    extra_data = zinfo.extra
    min_version = 0
    if extra:
        extra_data = _z._strip_extra(extra_data, (1,))
        extra_data = struct.pack("<HH" + "Q" * len(extra), 1, 8 * len(extra), *extra) + extra_data
        min_version = _z.ZIP64_VERSION
    if zinfo.compress_type == zipfile.ZIP_BZIP2:
        min_version = max(_z.BZIP2_VERSION, min_version)
    elif zinfo.compress_type == zipfile.ZIP_LZMA:
        min_version = max(_z.LZMA_VERSION, min_version)
    extract_version = max(min_version, zinfo.extract_version)
    create_version = max(min_version, zinfo.create_version)
    filename, flag_bits = zinfo._encodeFilenameFlags()  # type: ignore[attr-defined]
    centdir = struct.pack(
        _z.structCentralDir,
        _z.stringCentralDir,
        create_version,
        zinfo.create_system,
        extract_version,
        zinfo.reserved,
        flag_bits,
        zinfo.compress_type,
        dostime,
        dosdate,
        zinfo.CRC,
        compress_size,
        file_size,
        len(filename),
        len(extra_data),
        len(zinfo.comment),
        0,
        zinfo.internal_attr,
        zinfo.external_attr,
        header_offset,
    )
    return bytes(centdir + filename + extra_data + zinfo.comment)


class CompactZipFile(zipfile.ZipFile):
    def __init__(
        self,
        file: IO[bytes],
        mode: Literal["w"] = "w",
        compression: int = zipfile.ZIP_STORED,
        allowZip64: bool = True,  # noqa: N803 (zipfile's name)
    ) -> None:
        if mode != "w":
            raise ValueError("CompactZipFile only writes new archives")
        self._records: list[bytes] = []
        super().__init__(file, mode, compression=compression, allowZip64=allowZip64)

    def compact(self) -> None:
        """Encode the records of the members written so far and drop their ZipInfo."""
        self._records.extend(central_record(zinfo) for zinfo in self.filelist)
        self.filelist.clear()
        self.NameToInfo.clear()

    def open(
        self, name: Any, mode: Literal["r", "w"] = "r", pwd: bytes | None = None, **kwargs: Any
    ) -> Any:
        if mode == "w":
            self.compact()  # the previous member is closed: at most one ZipInfo is kept
        return super().open(name, mode, pwd, **kwargs)

    def _write_end_record(self) -> None:
        self.compact()
        for record in self._records:
            self.fp.write(record)  # type: ignore[union-attr]
        pos2 = self.fp.tell()  # type: ignore[union-attr]
        count = len(self._records)
        size = pos2 - self.start_dir
        offset = self.start_dir
        if count > _z.ZIP_FILECOUNT_LIMIT or offset > _z.ZIP64_LIMIT or size > _z.ZIP64_LIMIT:
            if not self._allowZip64:  # type: ignore[attr-defined]
                raise zipfile.LargeZipFile("the archive would require ZIP64 extensions")
            self.fp.write(  # type: ignore[union-attr]
                struct.pack(
                    _z.structEndArchive64,
                    _z.stringEndArchive64,
                    44,
                    45,
                    45,
                    0,
                    0,
                    count,
                    count,
                    size,
                    offset,
                )
            )
            self.fp.write(  # type: ignore[union-attr]
                struct.pack(_z.structEndArchive64Locator, _z.stringEndArchive64Locator, 0, pos2, 1)
            )
            count, size, offset = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(offset, 0xFFFFFFFF)
        comment = self._comment  # type: ignore[attr-defined]
        endrec = struct.pack(
            _z.structEndArchive, _z.stringEndArchive, 0, 0, count, count, size, offset, len(comment)
        )
        self.fp.write(endrec)  # type: ignore[union-attr]
        self.fp.write(comment)  # type: ignore[union-attr]
        self.fp.flush()  # type: ignore[union-attr]
