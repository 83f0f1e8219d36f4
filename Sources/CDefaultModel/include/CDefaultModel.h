#ifndef CDEFAULTMODEL_H
#define CDEFAULTMODEL_H

#include <stddef.h>

/// The bundled default model (Models/default), embedded in the binary at build time with C23's
/// #embed: the bytes of encoder.safetensors, decoder.safetensors and config.json. Each function
/// returns the start of the bytes and stores their count.
const unsigned char *gsasr_default_model_encoder(size_t *count);
const unsigned char *gsasr_default_model_decoder(size_t *count);
const unsigned char *gsasr_default_model_config(size_t *count);

#endif
