// Row-streaming JPEG encoder over the classic libjpeg API (jpeg_write_scanlines into a FILE*).
// libjpeg's error_exit must not return; ours formats the message and longjmps to the setjmp of
// the entry point that is running, so no longjmp ever leaves this file.
#include "cimagecodec.h"

#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>

struct cic_jpeg_error {
    struct jpeg_error_mgr pub;  // first member: libjpeg sees only this part
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

struct cic_jpeg {
    struct jpeg_compress_struct cinfo;
    struct cic_jpeg_error error;
};

static void copy_message(char *dst, size_t size, const char *src) {
    if (dst != NULL && size > 0) snprintf(dst, size, "%s", src != NULL ? src : "unknown error");
}

static void cic_jpeg_on_error(j_common_ptr cinfo) {
    struct cic_jpeg_error *error = (struct cic_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, error->message);
    longjmp(error->jump, 1);
}

// Warnings and trace messages are not printed (stderr belongs to the command line tool).
static void cic_jpeg_on_message(j_common_ptr cinfo) { (void)cinfo; }

cic_jpeg *cic_jpeg_create(FILE *file, uint32_t width, uint32_t height, int channels, int quality,
                          int subsample, char *message, size_t message_size) {
    if (channels != 1 && channels != 3) {
        copy_message(message, message_size, "JPEG needs 1 (grey) or 3 (RGB) channels");
        return NULL;
    }
    cic_jpeg *j = (cic_jpeg *)calloc(1, sizeof *j);  // cinfo.mem == NULL until created
    if (j == NULL) {
        copy_message(message, message_size, "out of memory");
        return NULL;
    }
    j->cinfo.err = jpeg_std_error(&j->error.pub);
    j->error.pub.error_exit = cic_jpeg_on_error;
    j->error.pub.output_message = cic_jpeg_on_message;
    if (setjmp(j->error.jump)) {
        copy_message(message, message_size, j->error.message);
        jpeg_destroy_compress(&j->cinfo);
        free(j);
        return NULL;
    }
    jpeg_create_compress(&j->cinfo);
    jpeg_stdio_dest(&j->cinfo, file);
    j->cinfo.image_width = width;
    j->cinfo.image_height = height;
    j->cinfo.input_components = channels;
    j->cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&j->cinfo);
    jpeg_set_quality(&j->cinfo, quality, TRUE);
    if (channels == 3 && !subsample) {
        j->cinfo.comp_info[0].h_samp_factor = 1;
        j->cinfo.comp_info[0].v_samp_factor = 1;
    }
    jpeg_start_compress(&j->cinfo, TRUE);
    return j;
}

int cic_jpeg_write_marker(cic_jpeg *j, int marker, const uint8_t *data, size_t size,
                          char *message, size_t message_size) {
    if (size > 65533) {
        copy_message(message, message_size, "JPEG marker segment too large");
        return -1;
    }
    if (setjmp(j->error.jump)) {
        copy_message(message, message_size, j->error.message);
        return -1;
    }
    jpeg_write_marker(&j->cinfo, marker, data, (unsigned int)size);
    return 0;
}

int cic_jpeg_write_rows(cic_jpeg *j, const uint8_t *rows, size_t row_bytes, uint32_t count,
                        char *message, size_t message_size) {
    if (setjmp(j->error.jump)) {
        copy_message(message, message_size, j->error.message);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        JSAMPROW row = (JSAMPROW)(rows + (size_t)i * row_bytes);
        if (jpeg_write_scanlines(&j->cinfo, &row, 1) != 1) {
            copy_message(message, message_size, "libjpeg did not accept a scanline");
            return -1;
        }
    }
    return 0;
}

int cic_jpeg_finish(cic_jpeg *j, char *message, size_t message_size) {
    if (setjmp(j->error.jump)) {
        copy_message(message, message_size, j->error.message);
        return -1;
    }
    jpeg_finish_compress(&j->cinfo);
    return 0;
}

void cic_jpeg_destroy(cic_jpeg *j) {
    if (j == NULL) return;
    jpeg_destroy_compress(&j->cinfo);
    free(j);
}
