// Row-streaming PNG encoder over libpng's progressive write API (png_write_row). Every entry
// point installs its own setjmp; libpng's error callback records the message and longjmps back
// to it, so no longjmp ever leaves this file.
#include "cimagecodec.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>

struct cic_png {
    png_structp png;
    png_infop info;
    char message[256];
};

static void copy_message(char *dst, size_t size, const char *src) {
    if (dst != NULL && size > 0) snprintf(dst, size, "%s", src != NULL ? src : "unknown error");
}

static void cic_png_on_error(png_structp png, png_const_charp text) {
    cic_png *w = (cic_png *)png_get_error_ptr(png);
    copy_message(w->message, sizeof w->message, text != NULL ? text : "libpng error");
    png_longjmp(png, 1);
}

// Warnings are not printed (stderr belongs to the command line tool).
static void cic_png_on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

cic_png *cic_png_create(FILE *file, uint32_t width, uint32_t height, int channels, int depth,
                        const uint8_t *iccp_chunk, size_t iccp_chunk_size, int srgb,
                        const uint8_t *exif, size_t exif_size, char *message, size_t message_size) {
    static const png_byte iccp_name[5] = {'i', 'C', 'C', 'P', '\0'};
    static const png_byte exif_name[5] = {'e', 'X', 'I', 'f', '\0'};
    int color_type;
    switch (channels) {
    case 1: color_type = PNG_COLOR_TYPE_GRAY; break;
    case 2: color_type = PNG_COLOR_TYPE_GRAY_ALPHA; break;
    case 3: color_type = PNG_COLOR_TYPE_RGB; break;
    case 4: color_type = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default: copy_message(message, message_size, "unsupported channel count"); return NULL;
    }
    if (depth != 8 && depth != 16) {
        copy_message(message, message_size, "unsupported bit depth");
        return NULL;
    }
    cic_png *w = (cic_png *)calloc(1, sizeof *w);
    if (w == NULL) {
        copy_message(message, message_size, "out of memory");
        return NULL;
    }
    w->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, w, cic_png_on_error, cic_png_on_warning);
    if (w->png == NULL) {
        copy_message(message, message_size, "cannot create the libpng write structure");
        free(w);
        return NULL;
    }
    w->info = png_create_info_struct(w->png);
    if (w->info == NULL) {
        copy_message(message, message_size, "cannot create the libpng info structure");
        png_destroy_write_struct(&w->png, NULL);
        free(w);
        return NULL;
    }
    if (setjmp(png_jmpbuf(w->png))) {
        copy_message(message, message_size, w->message);
        png_destroy_write_struct(&w->png, &w->info);
        free(w);
        return NULL;
    }
    // libpng's default limit is 10^6 pixels per side; the caller checks sizes itself.
    png_set_user_limits(w->png, 0x7fffffffU, 0x7fffffffU);
    png_init_io(w->png, file);
    png_set_IHDR(w->png, w->info, width, height, depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (srgb && iccp_chunk == NULL) png_set_sRGB(w->png, w->info, PNG_sRGB_INTENT_PERCEPTUAL);
    png_write_info(w->png, w->info);
    // Written raw so that the profile bytes are carried as given (png_set_iCCP would validate
    // and could drop them); the position (after IHDR, before IDAT) is where iCCP belongs.
    if (iccp_chunk != NULL) png_write_chunk(w->png, iccp_name, iccp_chunk, iccp_chunk_size);
    // The Exif block (TIFF structure) as given, before IDAT as PNG 3rd edition §11.3.6 asks.
    if (exif != NULL && exif_size > 0) png_write_chunk(w->png, exif_name, exif, exif_size);
    return w;
}

int cic_png_write_rows(cic_png *w, const uint8_t *rows, size_t row_bytes, uint32_t count,
                       char *message, size_t message_size) {
    if (setjmp(png_jmpbuf(w->png))) {
        copy_message(message, message_size, w->message);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) png_write_row(w->png, rows + (size_t)i * row_bytes);
    return 0;
}

int cic_png_finish(cic_png *w, char *message, size_t message_size) {
    if (setjmp(png_jmpbuf(w->png))) {
        copy_message(message, message_size, w->message);
        return -1;
    }
    png_write_end(w->png, NULL);
    return 0;
}

void cic_png_destroy(cic_png *w) {
    if (w == NULL) return;
    png_destroy_write_struct(&w->png, &w->info);
    free(w);
}
