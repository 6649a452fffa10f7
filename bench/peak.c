/*
 * peak.c - the core's float32 FMA throughput, measured (bench/run.py builds and runs it).
 *
 * Each variant runs NACC independent accumulators through a long loop of fused multiply-adds,
 * enough of them to hide the FMA latency, so the loop is bound by FMA throughput alone.
 * Prints one line per variant: "<name> <accumulators> <GFLOP/s>" (1 FMA = 2 FLOP per lane).
 * With -fopenmp and OMP_NUM_THREADS=n every thread runs the loop and the total is printed.
 *
 * Build: cc -O3 -march=native -o peak peak.c [-fopenmp] (-O3 unrolls the accumulator loop, so the
 * accumulators live in registers).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define ITERS 20000000L

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One variant: NACC accumulators of type VT, FMA(a, b, c) = a*b + c, LANES floats per vector. */
#define DEFINE_LOOP(NAME, VT, SET1, FMA, ADD, TOFLOAT, LANES, NACC)                       \
    static float NAME(long iters)                                                       \
    {                                                                                   \
        VT acc[NACC];                                                                   \
        const VT a = SET1(0.999999f), b = SET1(1e-7f);                                  \
        long i;                                                                         \
        int k;                                                                          \
        for (k = 0; k < NACC; ++k)                                                      \
            acc[k] = SET1((float)k);                                                    \
        for (i = 0; i < iters; ++i) {                                                   \
            for (k = 0; k < NACC; ++k)                                                  \
                acc[k] = FMA(acc[k], a, b);                                             \
        }                                                                               \
        for (k = 1; k < NACC; ++k)                                                      \
            acc[0] = ADD(acc[0], acc[k]);                                               \
        return TOFLOAT(acc[0]);                                                         \
    }

#ifdef __AVX512F__
#define Z_TO_FLOAT(v) _mm512_reduce_add_ps(v)
DEFINE_LOOP(zmm8, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, Z_TO_FLOAT, 16, 8)
DEFINE_LOOP(zmm12, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, Z_TO_FLOAT, 16, 12)
DEFINE_LOOP(zmm16, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, Z_TO_FLOAT, 16, 16)
#endif
#ifdef __AVX2__
#define Y_TO_FLOAT(v) _mm_cvtss_f32(_mm256_castps256_ps128(v))
DEFINE_LOOP(ymm8, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, Y_TO_FLOAT, 8, 8)
DEFINE_LOOP(ymm12, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, Y_TO_FLOAT, 8, 12)
#endif

typedef float (*loop_fn)(long);

static void run(const char *name, loop_fn fn, int lanes, int nacc)
{
    double best = 0.0;
    int rep;
    for (rep = 0; rep < 5; ++rep) {
        double t0 = 0.0, t1 = 0.0, total = 0.0;
        volatile float sink = 0.0f;
        int threads = 1;
#ifdef _OPENMP
#pragma omp parallel reduction(+ : total)
        {
#pragma omp single
            threads = omp_get_num_threads();
#pragma omp barrier
#pragma omp master
            t0 = now();
            sink = fn(ITERS);
#pragma omp barrier
#pragma omp master
            t1 = now();
            total += 1.0;
        }
#else
        t0 = now();
        sink = fn(ITERS);
        t1 = now();
        total = 1.0;
#endif
        (void)sink;
        {
            double gflops = total * 2.0 * lanes * nacc * (double)ITERS / (t1 - t0) / 1e9;
            if (gflops > best)
                best = gflops;
        }
        (void)threads;
    }
    printf("%s %d %.1f\n", name, nacc, best);
}

int main(void)
{
#ifdef __AVX512F__
    run("avx512", zmm8, 16, 8);
    run("avx512", zmm12, 16, 12);
    run("avx512", zmm16, 16, 16);
#endif
#ifdef __AVX2__
    run("avx2", ymm8, 8, 8);
    run("avx2", ymm12, 8, 12);
#endif
    return 0;
}
