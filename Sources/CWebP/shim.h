// libwebp (encoder, decoder) and libwebpmux (ICCP chunk). Both report errors by return value.
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>
