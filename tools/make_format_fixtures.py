#!/usr/bin/env python3
"""Writes the TIFF, HEIC and AVIF test fixtures of Tests/ImageTests/Fixtures/formats.

The TIFFs are laid out byte by byte here, from the TIFF 6.0 specification (no libtiff), so that
the reader is tested against files it did not write. The HEIC and AVIF files are made with
Debian's encoders (heif-enc from libheif-examples, avifenc from libavif-bin), the way a phone
stores a photo: sensor-oriented pixels with a rotation box, an ICC profile and Exif. Needs numpy,
and for the HEIF files heif-enc, avifenc and a C compiler with libheif-dev. Run from the
repository root:  python3 tools/make_format_fixtures.py

Pixel values follow formulas that the tests recompute (Tests/ImageTests/FormatTests.swift):
  8-bit   v(x, y, c) = (7x + 13y + 50c + xy) mod 256
  16-bit  v(x, y, c) = (1031x + 2053y + 20000c + 17xy) mod 65536
for the stored (not yet upright) pixel (x, y) of a 24 x 16 image, channel c.
"""
import os
import struct
import subprocess
import tempfile

import numpy as np

OUT = "Tests/ImageTests/Fixtures/formats"
W, H = 24, 16


def pattern8(channels, w=W, h=H):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(channels), indexing="ij")
    return ((7 * x + 13 * y + 50 * c + x * y) % 256).astype(np.uint8)


def pattern16(channels, w=W, h=H):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(channels), indexing="ij")
    return ((1031 * x + 2053 * y + 20000 * c + 17 * x * y) % 65536).astype(np.uint16)


def icc_profile(size=200):
    """A profile with a valid ICC header (size, 'mntr', 'RGB ', 'acsp', no tags)."""
    p = bytearray((i * 37 + 11) % 251 for i in range(size))
    p[0:4] = struct.pack(">I", size)
    p[12:16] = b"mntr"
    p[16:20] = b"RGB "
    p[36:40] = b"acsp"
    p[128:132] = b"\0\0\0\0"
    return bytes(p)


TYPES = {"BYTE": (1, "B"), "ASCII": (2, "B"), "SHORT": (3, "H"), "LONG": (4, "I"), "RATIONAL": (5, "II"),
         "UNDEFINED": (7, "B")}


class TIFF:
    """A classic TIFF assembled in memory: append blobs, then IFDs that point at them."""

    def __init__(self, order):
        self.o = order  # "<" or ">"
        self.buf = bytearray((b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 0))

    def blob(self, data):
        if len(self.buf) % 2:
            self.buf += b"\0"
        at = len(self.buf)
        self.buf += data
        return at

    def value_bytes(self, typ, values):
        code, fmt = TYPES[typ]
        if typ == "ASCII":
            data = values.encode("latin-1") + b"\0"
        elif typ == "UNDEFINED":
            data = bytes(values)
        elif typ == "RATIONAL":
            data = b"".join(struct.pack(self.o + "II", n, d) for n, d in values)
        else:
            data = struct.pack(self.o + fmt * len(values), *values)
        count = len(data) if typ in ("ASCII", "UNDEFINED", "BYTE") else len(values)
        return code, count, data

    def ifd(self, entries):
        """entries: list of (tag, type, values); values of type 'IFD' are nested entry lists."""
        laid = []
        for tag, typ, values in sorted(entries, key=lambda e: e[0]):
            if typ == "IFD":
                laid.append((tag, 4, 1, struct.pack(self.o + "I", self.ifd(values))))
                continue
            code, count, data = self.value_bytes(typ, values)
            if len(data) > 4:
                data = struct.pack(self.o + "I", self.blob(data))
            laid.append((tag, code, count, data.ljust(4, b"\0")))
        at = self.blob(struct.pack(self.o + "H", len(laid)) + b"".join(
            struct.pack(self.o + "HHI", t, c, n) + d for t, c, n, d in laid) + struct.pack(self.o + "I", 0))
        return at

    def chain(self, offsets):
        """Sets the first-IFD offset and links the IFDs in order."""
        struct.pack_into(self.o + "I", self.buf, 4, offsets[0])
        for a, b in zip(offsets, offsets[1:]):
            n = struct.unpack_from(self.o + "H", self.buf, a)[0]
            struct.pack_into(self.o + "I", self.buf, a + 2 + 12 * n, b)

    def samples(self, array):
        return array.astype(array.dtype.newbyteorder(self.o)).tobytes()


def image_entries(t, w, h, bits, spp, photometric, strips, extra=None, planar=1, more=()):
    entries = [(256, "LONG", [w]), (257, "LONG", [h]), (258, "SHORT", [bits] * spp), (259, "SHORT", [1]),
               (262, "SHORT", [photometric]), (277, "SHORT", [spp]), (284, "SHORT", [planar])]
    rows = h // len(strips) if planar == 1 else h
    offsets = [t.blob(s) for s in strips]
    entries += [(273, "LONG", offsets), (279, "LONG", [len(s) for s in strips]), (278, "LONG", [rows])]
    if extra is not None:
        entries.append((338, "SHORT", [extra]))
    return entries + list(more)


EXIF_TEXT = [(0x010F, "ASCII", "GSASRCam"), (0x0110, "ASCII", "Phone 1"), (0x0132, "ASCII", "2026:12:07 10:00:00")]
EXIF_IFD = [(0x829A, "RATIONAL", [(1, 125)]), (0x9003, "ASCII", "2026:12:07 09:59:58"),
            (0x927C, "UNDEFINED", list(range(16)))]
GPS_IFD = [(0x0000, "BYTE", [2, 3, 0, 0]), (0x0001, "ASCII", "N"), (0x0002, "RATIONAL", [(48, 1), (51, 1), (2400, 100)])]


def exif_block(order, orientation):
    """A standalone Exif block (TIFF structure) with the tags above and an orientation."""
    t = TIFF(order)
    ifd0 = t.ifd(EXIF_TEXT + [(0x0112, "SHORT", [orientation]), (0x8769, "IFD", EXIF_IFD),
                              (0x8825, "IFD", GPS_IFD)])
    t.chain([ifd0])
    return bytes(t.buf)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def tiffs():
    # 16-bit RGB, little-endian, 4 strips, with the phone's text tags, Exif and GPS IFDs, an ICC
    # profile and orientation 6 (rotate 90° clockwise to view).
    t = TIFF("<")
    px = pattern16(3)
    strips = [t.samples(px[r:r + 4]) for r in range(0, H, 4)]
    ifd = t.ifd(image_entries(t, W, H, 16, 3, 2, strips, more=EXIF_TEXT + [
        (274, "SHORT", [6]), (34675, "UNDEFINED", list(icc_profile())), (0x8769, "IFD", EXIF_IFD),
        (0x8825, "IFD", GPS_IFD)]))
    t.chain([ifd])
    write("rgb16_exif_orient6.tif", t.buf)

    # 8-bit RGBA (unassociated alpha), big-endian, planar (one strip per plane).
    t = TIFF(">")
    px = pattern8(4)
    strips = [t.samples(px[:, :, c].copy()) for c in range(4)]
    ifd = t.ifd(image_entries(t, W, H, 8, 4, 2, strips, extra=2, planar=2))
    t.chain([ifd])
    write("rgba8_planar_be.tif", t.buf)

    # 16-bit grey, min-is-white, one strip.
    t = TIFF("<")
    ifd = t.ifd(image_entries(t, W, H, 16, 1, 0, [t.samples(pattern16(1))]))
    t.chain([ifd])
    write("grey16_miniswhite.tif", t.buf)

    # 1-bit bilevel (min-is-black), read through libtiff's RGBA interface: v = (x + y) mod 2.
    t = TIFF("<")
    rows = []
    for y in range(H):
        bits = [(x + y) % 2 for x in range(W)]
        rows.append(np.packbits(np.array(bits, dtype=np.uint8)).tobytes())
    ifd = t.ifd(image_entries(t, W, H, 1, 1, 1, [b"".join(rows)]))
    t.chain([ifd])
    write("bilevel.tif", t.buf)

    # Refused: 5 samples per pixel (RGB and two extra samples), and CMYK.
    for name, spp, photometric, more in [("five_samples.tif", 5, 2, [(338, "SHORT", [2, 0])]),
                                         ("cmyk.tif", 4, 5, [])]:
        t = TIFF("<")
        t.chain([t.ifd(image_entries(t, W, H, 8, spp, photometric, [t.samples(pattern8(spp))], more=more))])
        write(name, t.buf)

    # Refused: two pages.
    t = TIFF("<")
    a = t.ifd(image_entries(t, W, H, 8, 3, 2, [t.samples(pattern8(3))]))
    b = t.ifd(image_entries(t, W, H, 8, 3, 2, [t.samples(pattern8(3))]))
    t.chain([a, b])
    write("two_pages.tif", t.buf)

    # Accepted: a page and its reduced-resolution thumbnail (NewSubfileType 1).
    t = TIFF("<")
    a = t.ifd(image_entries(t, W, H, 8, 3, 2, [t.samples(pattern8(3))]))
    b = t.ifd(image_entries(t, 6, 4, 8, 3, 2, [t.samples(pattern8(3, 6, 4))], more=[(254, "LONG", [1])]))
    t.chain([a, b])
    write("with_thumbnail.tif", t.buf)


def heifs():
    """Phone-like HEIC and AVIF: stored 24 x 16 (sensor order), a rotation box that turns them
    upright like Exif orientation 6, an ICC profile and an Exif block (which also says 6, as a
    phone's does)."""
    with tempfile.TemporaryDirectory() as tmp:
        png = os.path.join(tmp, "stored.png")
        write_png(png, pattern8(3))
        exif = os.path.join(tmp, "exif.bin")
        with open(exif, "wb") as f:
            f.write(exif_block(">", 6))
        icc = os.path.join(tmp, "icc.bin")
        with open(icc, "wb") as f:
            f.write(icc_profile())
        # AVIF: lossless (identity matrix, 4:4:4), irot 3 = 270° anticlockwise = 90° clockwise.
        subprocess.run(["avifenc", "-l", "--irot", "3", "--exif", exif, "--icc", icc, png,
                        os.path.join(OUT, "phone.avif")], check=True, stdout=subprocess.DEVNULL)
        # HEIC: tools/heif_fixture.c (libheif's encoder with image_orientation).
        tool = os.path.join(tmp, "heif_fixture")
        subprocess.run(["cc", "-O1", "-o", tool, "tools/heif_fixture.c"] +
                       subprocess.run(["pkg-config", "--cflags", "--libs", "libheif"], check=True,
                                      capture_output=True, text=True).stdout.split(), check=True)
        raw = os.path.join(tmp, "stored.rgb")
        with open(raw, "wb") as f:
            f.write(pattern8(3).tobytes())
        subprocess.run([tool, raw, str(W), str(H), exif, icc, os.path.join(OUT, "phone.heic")], check=True)
        with open(os.path.join(OUT, "phone.heic"), "rb") as f:
            whole = f.read()
        write("truncated.heic", whole[: len(whole) * 2 // 3])


def write_png(path, rgb):
    import zlib
    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiffs()
    write("exif_be_orient6.bin", exif_block(">", 6))
    write("exif_le_orient8.bin", exif_block("<", 8))
    write("icc200.bin", icc_profile())
    heifs()
    print("fixtures written to", OUT)
