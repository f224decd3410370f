// LSTMLEARN_UNROLL fully unrolls the short loop after it (a register tile's
// rows and vectors). Without it GCC keeps a tile's accumulators on the stack
// around the k loop: a store and reload of every accumulator per tile, which
// at K 1-64 costs as much as the products (tiny and chargen inference ran 14%
// faster with it on a Zen 5 machine).
#pragma once

#if defined(__clang__)
#define LSTMLEARN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define LSTMLEARN_UNROLL _Pragma("GCC unroll 16")
#else
#define LSTMLEARN_UNROLL
#endif
