/*
 * engine/philox.h: Philox4x32-10 (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC'11; the generator cuRAND and PyTorch use), and the
 * sampler's uniform built on it. Header-only and free of state so that the
 * CPU sampler (engine/sampling.c) and the GPU sampler (kernels/cuda/sample.cu)
 * compile the very same code and draw bit-identical uniforms.
 *
 * A draw is keyed by (seed, stream, counter): key = seed, counter block =
 * (counter, stream), so a request's uniforms depend only on its own seed,
 * choice index and token index, never on the batch around it.
 * Known-answer vectors (Random123's kat_vectors) are checked in
 * tests/unit/check_sampling.c.
 */
#ifndef DS_ENGINE_PHILOX_H
#define DS_ENGINE_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define PHILOX_FN static __host__ __device__ __forceinline__
#else
#define PHILOX_FN static inline
#endif

/* c[4] <- Philox4x32-10(c, key k0 k1) */
PHILOX_FN void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[1] = (uint32_t)p1;
        c[3] = (uint32_t)p0;
        c[0] = n0;
        c[2] = n2;
        k0 += 0x9E3779B9u; /* the Weyl key schedule */
        k1 += 0xBB67AE85u;
    }
}

/* A uniform double in [0, 1) with 53 random bits (the first two output
 * words), keyed by (seed, stream, counter). */
PHILOX_FN double philox_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint32_t c[4] = { (uint32_t)counter, (uint32_t)(counter >> 32),
                      (uint32_t)stream, (uint32_t)(stream >> 32) };
    philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    uint64_t x = ((uint64_t)c[0] << 32) | c[1];
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

#endif
