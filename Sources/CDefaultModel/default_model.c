// The bundled default model in the binary, so that `gsasr` (and a library user's program) works
// wherever it is copied, with no model folder beside it. #embed (C23; clang 19 and later, which
// every supported Swift toolchain ships) copies the files' bytes at compile time, and clang lists
// them as dependencies, so a changed model rebuilds this file. Paths are relative to this file.
#include "CDefaultModel.h"

// #embed is standard C23; SwiftPM compiles C targets in an earlier mode, where clang accepts it as
// an extension and says so.
#pragma clang diagnostic ignored "-Wc23-extensions"

static const unsigned char encoder_bytes[] = {
#embed "../../Models/default/encoder.safetensors"
};

static const unsigned char decoder_bytes[] = {
#embed "../../Models/default/decoder.safetensors"
};

static const unsigned char config_bytes[] = {
#embed "../../Models/default/config.json"
};

const unsigned char *gsasr_default_model_encoder(size_t *count) {
    *count = sizeof encoder_bytes;
    return encoder_bytes;
}

const unsigned char *gsasr_default_model_decoder(size_t *count) {
    *count = sizeof decoder_bytes;
    return decoder_bytes;
}

const unsigned char *gsasr_default_model_config(size_t *count) {
    *count = sizeof config_bytes;
    return config_bytes;
}
