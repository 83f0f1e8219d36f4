// The classic libjpeg API (libjpeg-turbo), used only from the C target CImageCodec, which keeps
// its longjmp error handling away from Swift. jpeglib.h needs stdio.h first.
#include <stdio.h>
#include <jpeglib.h>
