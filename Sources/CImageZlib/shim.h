// zlib: inflate/deflate of PNG iCCP profiles and the PNG chunk CRC.
#include <zlib.h>
