// 16-bit PNG decoding over libpng's low-level read API. libpng's simplified API can return
// 16-bit samples only as linear light (it would convert sRGB-encoded files to linear and
// premultiply alpha), so 16-bit files are read here, as stored. The entry point installs its
// own setjmp; libpng's error callback longjmps back to it, never across Swift frames.
#include "cimagecodec.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

struct cic_png_source {
    const uint8_t *data;
    size_t size;
    size_t position;
    char message[256];
};

static void copy_message(char *dst, size_t size, const char *src) {
    if (dst != NULL && size > 0) snprintf(dst, size, "%s", src != NULL ? src : "unknown error");
}

static void cic_png_read_error(png_structp png, png_const_charp text) {
    struct cic_png_source *source = (struct cic_png_source *)png_get_error_ptr(png);
    copy_message(source->message, sizeof source->message, text != NULL ? text : "libpng error");
    png_longjmp(png, 1);
}

static void cic_png_read_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void cic_png_read_data(png_structp png, png_bytep out, size_t length) {
    struct cic_png_source *source = (struct cic_png_source *)png_get_io_ptr(png);
    if (length > source->size - source->position) png_error(png, "read beyond end of data");
    memcpy(out, source->data + source->position, length);
    source->position += length;
}

int cic_png_read16(const uint8_t *data, size_t size, uint32_t width, uint32_t height, int channels,
                   uint16_t *out, char *message, size_t message_size) {
    struct cic_png_source source = {data, size, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, cic_png_read_error,
                                             cic_png_read_warning);
    if (png == NULL) {
        copy_message(message, message_size, "cannot create the libpng read structure");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        copy_message(message, message_size, "cannot create the libpng info structure");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        copy_message(message, message_size, source.message);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_user_limits(png, 0x7fffffffU, 0x7fffffffU);
    png_set_read_fn(png, &source, cic_png_read_data);
    png_read_info(png, info);
    if (png_get_image_width(png, info) != width || png_get_image_height(png, info) != height)
        png_error(png, "header changed between reads");
    if (png_get_bit_depth(png, info) != 16) png_error(png, "not a 16-bit PNG");
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    // Converts only when the file declares a gamma that is not sRGB's (libpng skips
    // insignificant corrections); without gAMA the file is taken as sRGB.
    png_set_gamma(png, PNG_DEFAULT_sRGB, PNG_DEFAULT_sRGB);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    png_set_swap(png);
#endif
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if ((int)png_get_channels(png, info) != channels || png_get_bit_depth(png, info) != 16 ||
        png_get_rowbytes(png, info) != (size_t)width * (size_t)channels * 2)
        png_error(png, "unexpected sample layout after expansion");
    for (int pass = 0; pass < passes; pass++) {
        for (uint32_t y = 0; y < height; y++) {
            png_read_row(png, (png_bytep)(out + (size_t)y * width * (size_t)channels), NULL);
        }
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
