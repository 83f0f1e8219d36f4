// TIFF reading and writing over libtiff.
//
// libtiff's tag API is variadic (TIFFGetField, TIFFSetField), which Swift cannot call, and it
// reports errors through handlers; this file gives Swift fixed-signature entry points that
// return 0 or -1 with a one-line message. Errors and warnings are captured per handle
// (TIFFOpenOptionsSetErrorHandlerExtR, libtiff 4.5), never printed, and no global state is
// touched, so decodes may run on several threads at once.
//
// Untrusted files: libtiff is asked to refuse any single allocation over the caller's bound
// (TIFFOpenOptionsSetMaxSingleMemAlloc), every strip and tile read is checked for a short
// result, and every copy into the caller's buffer is clipped to the image.
#include "cimagecodec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

// MARK: - Errors

typedef struct {
    char text[256];
    int has_error;
} cic_tiff_errors;

static int cic_tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    (void)module;
    cic_tiff_errors *e = (cic_tiff_errors *)user;
    if (e != NULL && !e->has_error) {  // the first error is the cause; later ones follow from it
        vsnprintf(e->text, sizeof e->text, fmt, ap);
        for (char *c = e->text; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
        e->has_error = 1;
    }
    return 1;  // handled: the global handler (stderr) is not called
}

static int cic_tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1;  // warnings (unknown tags, for example) are not errors and are not printed
}

static void set_message(char *message, size_t size, const cic_tiff_errors *e, const char *fallback) {
    if (message == NULL || size == 0) return;
    snprintf(message, size, "%s", (e != NULL && e->has_error) ? e->text : fallback);
}

// MARK: - Reading from memory

typedef struct {
    const uint8_t *data;
    uint64_t size;
    uint64_t pos;
} cic_tiff_memory;

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n) {
    cic_tiff_memory *m = (cic_tiff_memory *)h;
    if (n <= 0 || m->pos >= m->size) return 0;
    uint64_t left = m->size - m->pos;
    uint64_t k = (uint64_t)n < left ? (uint64_t)n : left;
    memcpy(buf, m->data + m->pos, (size_t)k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n) {
    (void)h;
    (void)buf;
    (void)n;
    return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence) {
    cic_tiff_memory *m = (cic_tiff_memory *)h;
    uint64_t base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = m->pos; break;
    case SEEK_END: base = m->size; break;
    default: return (toff_t)-1;
    }
    if (off > UINT64_MAX - base) return (toff_t)-1;
    m->pos = base + off;  // past the end is allowed; reads there return 0 bytes
    return (toff_t)m->pos;
}

static int mem_close(thandle_t h) {
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h) { return (toff_t)((cic_tiff_memory *)h)->size; }

static int mem_map(thandle_t h, void **base, toff_t *size) {
    (void)h;
    (void)base;
    (void)size;
    return 0;  // not mapped: libtiff reads through mem_read
}

static void mem_unmap(thandle_t h, void *base, toff_t size) {
    (void)h;
    (void)base;
    (void)size;
}

struct cic_tiff {
    TIFF *tif;
    cic_tiff_memory memory;
    cic_tiff_errors errors;
    cic_tiff_info info;
};

void cic_tiff_close(cic_tiff *t) {
    if (t == NULL) return;
    if (t->tif != NULL) TIFFClose(t->tif);
    free(t);
}

cic_tiff *cic_tiff_open(const uint8_t *data, size_t size, uint64_t max_alloc, cic_tiff_info *info,
                        char *message, size_t message_size) {
    cic_tiff *t = (cic_tiff *)calloc(1, sizeof *t);
    if (t == NULL) {
        set_message(message, message_size, NULL, "out of memory");
        return NULL;
    }
    t->memory.data = data;
    t->memory.size = size;
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (opts == NULL) {
        free(t);
        set_message(message, message_size, NULL, "out of memory");
        return NULL;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, cic_tiff_on_error, &t->errors);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, cic_tiff_on_warning, NULL);
    if (max_alloc > 0) TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)max_alloc);
    t->tif = TIFFClientOpenExt("tiff", "rm", (thandle_t)&t->memory, mem_read, mem_write, mem_seek, mem_close,
                               mem_size, mem_map, mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (t->tif == NULL) {
        set_message(message, message_size, &t->errors, "not a readable TIFF file");
        free(t);
        return NULL;
    }
    TIFF *tif = t->tif;
    cic_tiff_info *i = &t->info;
    memset(i, 0, sizeof *i);
    // Pages: every directory that is not a reduced-resolution copy (a thumbnail or a preview)
    // of another. The walk stops at 1000: that is "many pages" either way.
    int pages = 0, dirs = 0;
    do {
        uint32_t subfile = 0;
        TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &subfile);
        if (!(subfile & FILETYPE_REDUCEDIMAGE)) pages++;
        dirs++;
    } while (dirs < 1000 && TIFFReadDirectory(tif));
    i->pages = pages;
    t->errors.has_error = 0;  // an error while walking later directories is not the first page's
    if (!TIFFSetDirectory(tif, 0)) {
        set_message(message, message_size, &t->errors, "cannot read its first directory");
        cic_tiff_close(t);
        return NULL;
    }
    uint16_t v16 = 0;
    uint32_t v32 = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &v32);
    i->width = v32;
    v32 = 0;
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &v32);
    i->height = v32;
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &v16);
    i->bits = v16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &v16);
    i->samples = v16;
    v16 = 0xFFFF;
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &v16)) v16 = 0xFFFF;  // required: absent is an error
    i->photometric = v16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &v16);
    i->planar = v16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &v16);
    i->sample_format = v16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &v16);
    i->orientation = v16;
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &v16);
    i->compression = v16;
    i->tiled = TIFFIsTiled(tif) ? 1 : 0;
    uint16_t extra_count = 0;
    uint16_t *extra = NULL;
    if (TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &extra_count, &extra) && extra_count > 0 && extra != NULL) {
        i->extra_count = extra_count;
        i->extra_type = extra[0];
    }
    uint32_t icc_size = 0;
    void *icc = NULL;
    if (TIFFGetField(tif, TIFFTAG_ICCPROFILE, &icc_size, &icc) && icc != NULL) {
        i->icc = (const uint8_t *)icc;
        i->icc_size = icc_size;
    }
    // JPEG-compressed YCbCr: libjpeg converts to RGB while decoding.
    if (i->compression == COMPRESSION_JPEG && i->photometric == PHOTOMETRIC_YCBCR) {
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        i->photometric = PHOTOMETRIC_RGB;
        i->converted_ycbcr = 1;
    }
    *info = *i;
    return t;
}

int cic_tiff_read_samples(cic_tiff *t, uint8_t *out, size_t out_size, char *message, size_t message_size) {
    TIFF *tif = t->tif;
    const cic_tiff_info *i = &t->info;
    if (i->bits != 8 && i->bits != 16) {
        set_message(message, message_size, NULL, "only 8- and 16-bit samples are read as stored");
        return -1;
    }
    const size_t bps = i->bits / 8, spp = i->samples, width = i->width, height = i->height;
    const size_t pixel_bytes = spp * bps;
    if (spp == 0 || width == 0 || height == 0 || out_size / pixel_bytes / width != height) {
        set_message(message, message_size, NULL, "the output buffer does not match the image");
        return -1;
    }
    const int separate = i->planar == PLANARCONFIG_SEPARATE && spp > 1;
    const size_t planes = separate ? spp : 1, chunk_spp = separate ? 1 : spp;
    const size_t chunk_pixel = chunk_spp * bps;
    t->errors.has_error = 0;
    if (!i->tiled) {
        uint32_t rps = 0;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        if (rps == 0 || rps > height) rps = (uint32_t)height;
        const size_t strips_per_plane = (height + rps - 1) / rps;
        if ((uint64_t)strips_per_plane * planes > TIFFNumberOfStrips(tif)) {
            set_message(message, message_size, NULL, "it has fewer strips than its size needs");
            return -1;
        }
        const size_t strip_bytes = (size_t)rps * width * chunk_pixel;
        uint8_t *buf = (uint8_t *)malloc(strip_bytes);
        if (buf == NULL) {
            set_message(message, message_size, NULL, "out of memory for a strip");
            return -1;
        }
        for (size_t p = 0; p < planes; p++) {
            for (size_t s = 0; s < strips_per_plane; s++) {
                const size_t y0 = s * rps, rows = (height - y0 < rps) ? height - y0 : rps;
                const size_t need = rows * width * chunk_pixel;
                tmsize_t n = TIFFReadEncodedStrip(tif, (uint32_t)(p * strips_per_plane + s), buf, (tmsize_t)need);
                if (n < 0 || (size_t)n < need) {
                    free(buf);
                    set_message(message, message_size, &t->errors, "a strip is truncated or does not decode");
                    return -1;
                }
                if (!separate) {
                    memcpy(out + y0 * width * pixel_bytes, buf, need);
                } else {
                    for (size_t k = 0; k < rows * width; k++)
                        memcpy(out + (y0 * width + k) * pixel_bytes + p * bps, buf + k * bps, bps);
                }
            }
        }
        free(buf);
        return 0;
    }
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    if (tw == 0 || th == 0 || tw > 65536 || th > 65536) {
        set_message(message, message_size, NULL, "its tile size is invalid");
        return -1;
    }
    const size_t tile_bytes = (size_t)tw * th * chunk_pixel;
    uint8_t *buf = (uint8_t *)malloc(tile_bytes);
    if (buf == NULL) {
        set_message(message, message_size, NULL, "out of memory for a tile");
        return -1;
    }
    for (size_t p = 0; p < planes; p++) {
        for (size_t ty = 0; ty < height; ty += th) {
            for (size_t tx = 0; tx < width; tx += tw) {
                uint32_t tile = TIFFComputeTile(tif, (uint32_t)tx, (uint32_t)ty, 0, (uint16_t)p);
                if (tile >= TIFFNumberOfTiles(tif)) {
                    free(buf);
                    set_message(message, message_size, NULL, "it has fewer tiles than its size needs");
                    return -1;
                }
                tmsize_t n = TIFFReadEncodedTile(tif, tile, buf, (tmsize_t)tile_bytes);
                if (n < 0 || (size_t)n < tile_bytes) {
                    free(buf);
                    set_message(message, message_size, &t->errors, "a tile is truncated or does not decode");
                    return -1;
                }
                const size_t cols = (width - tx < tw) ? width - tx : tw;
                const size_t rows = (height - ty < th) ? height - ty : th;
                for (size_t r = 0; r < rows; r++) {
                    const uint8_t *src = buf + r * tw * chunk_pixel;
                    uint8_t *dst = out + ((ty + r) * width + tx) * pixel_bytes;
                    if (!separate) {
                        memcpy(dst, src, cols * pixel_bytes);
                    } else {
                        for (size_t c = 0; c < cols; c++) memcpy(dst + c * pixel_bytes + p * bps, src + c * bps, bps);
                    }
                }
            }
        }
    }
    free(buf);
    return 0;
}

int cic_tiff_read_rgba(cic_tiff *t, uint32_t *out, size_t out_count, char *message, size_t message_size) {
    TIFF *tif = t->tif;
    const cic_tiff_info *i = &t->info;
    if ((uint64_t)i->width * i->height != out_count) {
        set_message(message, message_size, NULL, "the output buffer does not match the image");
        return -1;
    }
    char emsg[1024] = {0};
    t->errors.has_error = 0;
    if (!TIFFRGBAImageOK(tif, emsg)) {
        set_message(message, message_size, NULL, emsg[0] ? emsg : "libtiff cannot convert this layout to RGB");
        return -1;
    }
    TIFFRGBAImage img;
    if (!TIFFRGBAImageBegin(&img, tif, 1, emsg)) {
        set_message(message, message_size, NULL, emsg[0] ? emsg : "libtiff cannot convert this layout to RGB");
        return -1;
    }
    // The stored row order: asking for the file's own orientation means no flip; the caller
    // turns the pixels upright (all eight orientations, which TIFFRGBAImage cannot).
    img.req_orientation = img.orientation;
    int ok = TIFFRGBAImageGet(&img, out, i->width, i->height);
    TIFFRGBAImageEnd(&img);
    if (!ok || t->errors.has_error) {
        set_message(message, message_size, &t->errors, "the image data does not decode");
        return -1;
    }
    return 0;
}

// MARK: - Writing

struct cic_tiff_writer {
    TIFF *tif;
    cic_tiff_errors errors;
    uint32_t width, height, next_row;
    size_t row_bytes;
    uint8_t *row;  // libtiff's predictor may modify the row it is given: a private copy
};

void cic_tiff_destroy(cic_tiff_writer *w) {
    if (w == NULL) return;
    if (w->tif != NULL) TIFFClose(w->tif);
    free(w->row);
    free(w);
}

cic_tiff_writer *cic_tiff_create(int fd, uint32_t width, uint32_t height, int channels, int depth, int big_endian,
                                 int big_tiff, const uint8_t *icc, size_t icc_size, const uint32_t *ascii_tags,
                                 const char *ascii_values, int ascii_count, int exif_placeholder,
                                 int gps_placeholder, char *message, size_t message_size) {
    cic_tiff_writer *w = (cic_tiff_writer *)calloc(1, sizeof *w);
    if (w == NULL) {
        set_message(message, message_size, NULL, "out of memory");
        return NULL;
    }
    if ((channels < 1 || channels > 4) || (depth != 8 && depth != 16)) {
        set_message(message, message_size, NULL, "unsupported channel count or depth");
        free(w);
        return NULL;
    }
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (opts == NULL) {
        free(w);
        set_message(message, message_size, NULL, "out of memory");
        return NULL;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, cic_tiff_on_error, &w->errors);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, cic_tiff_on_warning, NULL);
    char mode[4] = {'w', big_endian ? 'b' : 'l', big_tiff ? '8' : '\0', '\0'};
    w->tif = TIFFFdOpenExt(fd, "output", mode, opts);
    TIFFOpenOptionsFree(opts);
    if (w->tif == NULL) {
        set_message(message, message_size, &w->errors, "libtiff cannot open the output");
        free(w);
        return NULL;
    }
    TIFF *tif = w->tif;
    w->width = width;
    w->height = height;
    w->row_bytes = (size_t)width * channels * (depth / 8);
    w->row = (uint8_t *)malloc(w->row_bytes);
    const int alpha = channels == 2 || channels == 4;
    uint16_t unassociated = EXTRASAMPLE_UNASSALPHA;
    int ok = w->row != NULL;
    ok = ok && TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
    ok = ok && TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
    ok = ok && TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
    ok = ok && TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)depth);
    ok = ok && TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
    ok = ok && TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, channels >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    ok = ok && TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    ok = ok && TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    ok = ok && TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    ok = ok && TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
    if (alpha) ok = ok && TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)1, &unassociated);
    // Strips of about 256 KiB of raw samples.
    if (ok) {
        uint32_t rows = (uint32_t)((256u << 10) / (w->row_bytes ? w->row_bytes : 1));
        if (rows < 1) rows = 1;
        if (rows > height) rows = height;
        ok = TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows);
    }
    if (ok && icc != NULL && icc_size > 0) ok = TIFFSetField(tif, TIFFTAG_ICCPROFILE, (uint32_t)icc_size, icc);
    const char *value = ascii_values;
    for (int k = 0; ok && k < ascii_count; k++) {
        ok = TIFFSetField(tif, ascii_tags[k], value);
        value += strlen(value) + 1;
    }
    // The Exif and GPS directories are appended by the caller after TIFFClose, which then
    // patches these entries' values (a placeholder here, so that libtiff writes the entries).
    if (ok && exif_placeholder) ok = TIFFSetField(tif, TIFFTAG_EXIFIFD, (uint64_t)8);
    if (ok && gps_placeholder) ok = TIFFSetField(tif, TIFFTAG_GPSIFD, (uint64_t)8);
    if (!ok) {
        set_message(message, message_size, &w->errors, "libtiff refused a header field");
        cic_tiff_destroy(w);
        return NULL;
    }
    return w;
}

int cic_tiff_write_rows(cic_tiff_writer *w, const uint8_t *rows, size_t row_bytes, uint32_t count, char *message,
                        size_t message_size) {
    if (row_bytes != w->row_bytes || count > w->height - w->next_row) {
        set_message(message, message_size, NULL, "rows do not match the image");
        return -1;
    }
    for (uint32_t r = 0; r < count; r++) {
        memcpy(w->row, rows + (size_t)r * row_bytes, row_bytes);
        if (TIFFWriteScanline(w->tif, w->row, w->next_row, 0) != 1) {
            set_message(message, message_size, &w->errors, "libtiff could not write a row");
            return -1;
        }
        w->next_row++;
    }
    return 0;
}

int cic_tiff_finish(cic_tiff_writer *w, char *message, size_t message_size) {
    if (w->next_row != w->height) {
        set_message(message, message_size, NULL, "not every row was written");
        return -1;
    }
    int ok = TIFFFlush(w->tif);
    if (!ok || w->errors.has_error) {
        set_message(message, message_size, &w->errors, "libtiff could not finish the file");
        return -1;
    }
    TIFFClose(w->tif);  // closes the descriptor it was given
    w->tif = NULL;
    return 0;
}
