// zlib, for reading gzip-compressed data sets (Fashion-MNIST ships as .gz).
#ifndef CLOVER_CZLIB_SHIM_H
#define CLOVER_CZLIB_SHIM_H
#include <zlib.h>

// inflateInit2 is a function-like macro, which Swift cannot import. Window
// bits 15 + 32 select the largest window and automatic gzip/zlib header
// detection, so gzip files (and their CRC-32 trailers) are checked by zlib.
static inline int clover_inflate_init_gzip(z_streamp stream) {
    return inflateInit2(stream, 15 + 32);
}
#endif
