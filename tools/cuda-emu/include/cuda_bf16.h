/* tools/cuda-emu/include/cuda_bf16.h: emulator bf16 (RNE conversion). */
#ifndef EMU_CUDA_BF16_H
#define EMU_CUDA_BF16_H
#include <stdint.h>
#include <string.h>
typedef struct { uint16_t x; } __nv_bfloat16;
static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        r.x = (uint16_t)((u >> 16) | 0x40);
    else
        r.x = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
static inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
static inline float __uint_as_float(unsigned u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
#endif
