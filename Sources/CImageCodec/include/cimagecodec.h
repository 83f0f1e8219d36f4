// Row-streaming PNG and JPEG encoders over libpng and libjpeg.
//
// Both libraries report errors by longjmp out of an error callback. longjmp must never cross
// Swift frames, so every entry point here runs its library calls under its own setjmp and
// returns 0 on success or -1 on failure, with a one-line message copied into `message`
// (`message_size` bytes, always NUL-terminated). After a failure the encoder may only be
// destroyed. The FILE* stays owned by the caller (it is never closed here).
#ifndef CIMAGECODEC_H
#define CIMAGECODEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cic_png cic_png;
typedef struct cic_jpeg cic_jpeg;

/// Starts a PNG on `file`: signature, IHDR (channels 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA;
/// depth 8 or 16, non-interlaced), then either an sRGB chunk (`srgb` != 0) or the chunk
/// `iccp_chunk` (the already assembled iCCP chunk data: keyword, NUL, method 0, zlib stream),
/// which is written raw, before the first IDAT; then `exif` (a TIFF-structured Exif block, or
/// NULL) as an eXIf chunk. Returns NULL on failure.
cic_png *cic_png_create(FILE *file, uint32_t width, uint32_t height, int channels, int depth,
                        const uint8_t *iccp_chunk, size_t iccp_chunk_size, int srgb,
                        const uint8_t *exif, size_t exif_size, char *message, size_t message_size);

/// Writes `count` rows of `row_bytes` bytes each, in file layout (16-bit samples big-endian).
int cic_png_write_rows(cic_png *png, const uint8_t *rows, size_t row_bytes, uint32_t count,
                       char *message, size_t message_size);

/// Writes IEND. The rows must all have been written.
int cic_png_finish(cic_png *png, char *message, size_t message_size);

/// Frees the encoder (NULL is allowed).
void cic_png_destroy(cic_png *png);

/// Decodes a 16-bit PNG held in memory to its stored samples, as native-endian uint16:
/// `channels` (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; a tRNS chunk becomes an alpha channel) per
/// pixel, not premultiplied, interlacing undone. A file gamma (gAMA) that differs from sRGB's
/// is converted to sRGB; files with an sRGB chunk or no colour-space chunk keep their values.
/// `out` holds width * height * channels samples; the header must match `width`, `height`
/// and `channels` (the caller read them first), otherwise this fails.
int cic_png_read16(const uint8_t *data, size_t size, uint32_t width, uint32_t height, int channels,
                   uint16_t *out, char *message, size_t message_size);

/// Starts a baseline JPEG on `file` (channels 1 grey or 3 RGB, 8-bit; quality 1...100) and
/// writes its JFIF header. `subsample` != 0 selects 4:2:0 chroma, otherwise 4:4:4. Huffman
/// tables are the standard ones (optimised tables would need a whole-image coefficient buffer).
cic_jpeg *cic_jpeg_create(FILE *file, uint32_t width, uint32_t height, int channels, int quality,
                          int subsample, char *message, size_t message_size);

/// Writes one marker segment (e.g. 0xE2 for APP2) with `size` <= 65533 payload bytes. Only
/// before the first row.
int cic_jpeg_write_marker(cic_jpeg *jpeg, int marker, const uint8_t *data, size_t size,
                          char *message, size_t message_size);

/// Writes `count` scanlines of `row_bytes` bytes each.
int cic_jpeg_write_rows(cic_jpeg *jpeg, const uint8_t *rows, size_t row_bytes, uint32_t count,
                        char *message, size_t message_size);

/// Writes the EOI marker. The rows must all have been written.
int cic_jpeg_finish(cic_jpeg *jpeg, char *message, size_t message_size);

/// Frees the encoder (NULL is allowed).
void cic_jpeg_destroy(cic_jpeg *jpeg);


// MARK: TIFF (libtiff; tiff_codec.c)

typedef struct cic_tiff cic_tiff;
typedef struct cic_tiff_writer cic_tiff_writer;

/// What the first directory of a TIFF says (tags as stored; defaults where a tag is absent).
typedef struct {
    uint32_t width, height;
    uint16_t bits, samples, photometric, planar, sample_format, orientation, compression;
    /// Number of extra samples and the type of the first (0 unspecified, 1 associated alpha,
    /// 2 unassociated alpha).
    uint16_t extra_count, extra_type;
    int tiled;
    /// Directories that are not reduced-resolution copies (thumbnails) of another: pages.
    int pages;
    /// A JPEG-compressed YCbCr file that libjpeg converts to RGB (photometric then says RGB).
    int converted_ycbcr;
    /// The ICC profile (TIFFTAG_ICCPROFILE) inside libtiff's memory, valid until close.
    const uint8_t *icc;
    uint32_t icc_size;
} cic_tiff_info;

/// Opens a TIFF held in memory (`data` must outlive the handle), walks its directories to
/// count pages, and reads the first one's tags into `info`. Any single allocation libtiff
/// makes is bounded by `max_alloc` bytes (0: libtiff's default). NULL on failure.
cic_tiff *cic_tiff_open(const uint8_t *data, size_t size, uint64_t max_alloc, cic_tiff_info *info,
                        char *message, size_t message_size);

/// Reads an 8- or 16-bit image as stored into `out` (`width * height * samples` samples,
/// interleaved, native-endian), from strips or tiles, contiguous or planar.
int cic_tiff_read_samples(cic_tiff *tiff, uint8_t *out, size_t out_size, char *message, size_t message_size);

/// Reads any layout libtiff's RGBA interface handles (palettes, 1-4 bit grey, YCbCr,
/// min-is-white) as 8-bit RGBA packed in uint32 (R in the low byte), rows in stored order.
int cic_tiff_read_rgba(cic_tiff *tiff, uint32_t *out, size_t out_count, char *message, size_t message_size);

void cic_tiff_close(cic_tiff *tiff);

/// Starts a TIFF on `fd` (which libtiff closes at finish or destroy: pass a duplicate): one
/// page, `channels` 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (unassociated alpha), `depth` 8 or 16,
/// Deflate with the horizontal predictor, top-left orientation; big-endian when `big_endian`,
/// BigTIFF when `big_tiff`. `icc` (or NULL) is embedded; `ascii_count` ASCII tags from
/// `ascii_tags` with their values NUL-separated in `ascii_values`; `exif_placeholder` and
/// `gps_placeholder` write the EXIFIFD and GPSIFD entries with a placeholder value that the
/// caller patches after finish.
cic_tiff_writer *cic_tiff_create(int fd, uint32_t width, uint32_t height, int channels, int depth, int big_endian,
                                 int big_tiff, const uint8_t *icc, size_t icc_size, const uint32_t *ascii_tags,
                                 const char *ascii_values, int ascii_count, int exif_placeholder,
                                 int gps_placeholder, char *message, size_t message_size);

/// Writes `count` rows of `row_bytes` bytes (16-bit samples native-endian).
int cic_tiff_write_rows(cic_tiff_writer *writer, const uint8_t *rows, size_t row_bytes, uint32_t count,
                        char *message, size_t message_size);

/// Writes the directory and closes the file (and its descriptor).
int cic_tiff_finish(cic_tiff_writer *writer, char *message, size_t message_size);

void cic_tiff_destroy(cic_tiff_writer *writer);

#ifdef __cplusplus
}
#endif

#endif
