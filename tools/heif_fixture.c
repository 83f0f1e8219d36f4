// Writes a HEIC the way a phone stores a photo, for tools/make_format_fixtures.py: the pixels as
// stored (8-bit RGB, raw), a rotation that libheif records as irot/imir boxes (Exif numbering
// 6: view it turned 90° clockwise), an ICC profile and an Exif block (after the 4-byte offset
// that HEIF's Exif item starts with). Lossless-quality x265 at 4:4:4.
//   heif_fixture RAW.rgb WIDTH HEIGHT EXIF.bin ICC.bin OUT.heic
#include <libheif/heif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*size);
    if (fread(b, 1, *size, f) != *size) { perror(path); exit(1); }
    fclose(f);
    return b;
}

static void check(struct heif_error e, const char *what) {
    if (e.code != heif_error_Ok) { fprintf(stderr, "%s: %s\n", what, e.message); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: heif_fixture RAW W H EXIF ICC OUT\n"); return 2; }
    int w = atoi(argv[2]), h = atoi(argv[3]);
    size_t raw_size, exif_size, icc_size;
    unsigned char *raw = slurp(argv[1], &raw_size), *exif = slurp(argv[4], &exif_size), *icc = slurp(argv[5], &icc_size);
    if (raw_size != (size_t)w * h * 3) { fprintf(stderr, "raw size\n"); return 1; }
    struct heif_context *ctx = heif_context_alloc();
    struct heif_encoder *enc;
    check(heif_context_get_encoder_for_format(ctx, heif_compression_HEVC, &enc), "encoder");
    check(heif_encoder_set_lossy_quality(enc, 100), "quality");
    check(heif_encoder_set_parameter(enc, "chroma", "444"), "chroma");
    struct heif_image *img;
    check(heif_image_create(w, h, heif_colorspace_RGB, heif_chroma_interleaved_RGB, &img), "image");
    check(heif_image_add_plane(img, heif_channel_interleaved, w, h, 8), "plane");
    int stride;
    uint8_t *p = heif_image_get_plane(img, heif_channel_interleaved, &stride);
    for (int y = 0; y < h; y++) memcpy(p + (size_t)y * stride, raw + (size_t)y * w * 3, (size_t)w * 3);
    check(heif_image_set_raw_color_profile(img, "prof", icc, icc_size), "icc");
    struct heif_encoding_options *opts = heif_encoding_options_alloc();
    opts->image_orientation = heif_orientation_rotate_90_cw;
    struct heif_image_handle *handle;
    check(heif_context_encode_image(ctx, img, enc, opts, &handle), "encode");
    check(heif_context_add_exif_metadata(ctx, handle, exif, (int)exif_size), "exif");
    check(heif_context_write_to_file(ctx, argv[6]), "write");
    return 0;
}
