// TurboJPEG API (libjpeg-turbo). Unlike the libjpeg API it reports errors through return
// codes and tjGetErrorStr2 instead of longjmp, so it is safe to call from Swift.
#include <turbojpeg.h>
