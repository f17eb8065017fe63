// =================================================================================================
// window.h — the convolution window macros shared by depthwise.cl, grouped.cl and convgemm.cl, with
// their defaults: KH, KW (kernel size) and SH, SW (strides), all compile-time so that tap
// decoding is multiplication. The host always sets them; the defaults only let a file compile
// on its own.
// =================================================================================================

#ifndef CLOVER_WINDOW_H
#define CLOVER_WINDOW_H
#ifndef KH
#define KH 3
#endif
#ifndef KW
#define KW 3
#endif
#ifndef SH
#define SH 1
#endif
#ifndef SW
#define SW 1
#endif
#endif
