/*
 * harness.c - runs a generated network on a device (or under QEMU) with inputs from a file
 * and results to a file: through semihosting on bare-metal Cortex-M (newlib's rdimon maps
 * fopen/fread/fwrite to the host's files), through ordinary files on Linux (AArch64 under
 * qemu-user, or the host).
 *
 * Build: <cc> <device flags> -std=c99 -DCG_HEADER='"net.h"' -DCG_PREFIX=net -DCG_MACRO=NET \
 *            harness.c net.c net_weights.c [startup.c -T flat.ld --specs=rdimon.specs] -lm
 * Run:   harness in.bin out.bin count
 *
 * For each of `count` images (float32 HWC, IN_SIZE floats each) it calls <net>_predict (the
 * static arena) and writes OUT_SIZE floats; it also calls <net>_predict_ws with a separate
 * workspace and requires the same bits. Before the first call it fills the free stack below
 * the stack pointer with a pattern; afterwards the deepest overwritten word gives the stack
 * the network used (printed as "codegen-harness: stack N bytes").
 * On Cortex-M (QEMU -icount shift=0) it reads SysTick before and after each <net>_predict and
 * prints the ticks ("codegen-harness: image N ticks T"; systick.h says what a tick is). Built
 * with -DCG_PROFILE for a network generated with profiling hooks (its header defines
 * <NET>_PROFILE_OPS = n), it also prints the ticks at each hook: <net>_profile_op(i) is called
 * before op i and with i = n after the last ("codegen-harness: image N hooks T0 T1 ... Tn",
 * ticks since the image's start).
 * Exit status: 0 ok, 2 usage or file error, 3 predict returned an error, 4 predict and
 * predict_ws differ.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include CG_HEADER

#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
#define CG_COUNT 1                 /* SysTick counts instructions under QEMU -icount shift=0 */
#include "systick.h"

volatile uint32_t cg_systick_wraps;

void SysTick_Handler(void);        /* replaces startup.c's weak entry in the vector table */
void SysTick_Handler(void)
{
    ++cg_systick_wraps;
}
#endif

#define CG_CAT2(a, b) a##b
#define CG_CAT(a, b) CG_CAT2(a, b)
#define PREDICT CG_CAT(CG_PREFIX, _predict)
#define PREDICT_WS CG_CAT(CG_PREFIX, _predict_ws)
#define IN_SIZE CG_CAT(CG_MACRO, _IN_SIZE)
#define OUT_SIZE CG_CAT(CG_MACRO, _OUT_SIZE)
#define ARENA_BYTES CG_CAT(CG_MACRO, _ARENA_BYTES)
#define PROFILE_OP CG_CAT(CG_PREFIX, _profile_op)
#ifdef CG_PROFILE
#define CG_PROFILE_OPS CG_CAT(CG_MACRO, _PROFILE_OPS)
#endif

#if defined(CG_PROFILE_OPS) && defined(CG_COUNT)
static uint64_t hook_ticks[CG_PROFILE_OPS + 1];
static int hooks_on;               /* record only around the counted predict call */

void PROFILE_OP(int op);
void PROFILE_OP(int op)
{
    if (hooks_on && op >= 0 && op <= CG_PROFILE_OPS)
        hook_ticks[op] = cg_systick_now();
}
#elif defined(CG_PROFILE_OPS)
void PROFILE_OP(int op);
void PROFILE_OP(int op)
{
    (void)op;
}
#endif

#ifndef CG_STACK_PAINT
#define CG_STACK_PAINT 65536u      /* bytes of stack painted below the stack pointer */
#endif
#define CG_PATTERN 0xC0DE57ACu

#ifdef __NEWLIB__
extern void *sbrk(ptrdiff_t increment);
#endif

static float in_buf[IN_SIZE];
static float out_buf[OUT_SIZE];
static float out_ws[OUT_SIZE];
/* The second workspace (for predict_ws) may go to a larger memory region (flat.ld's BULK). */
static float workspace[(ARENA_BYTES + sizeof(float) - 1) / sizeof(float) + 4]
    __attribute__((aligned(64), section(".bss.cg_bulk")));

static int fail(const char *what)
{
    fprintf(stderr, "codegen-harness: %s\n", what);
    return 2;
}

/* The stack pointer (where predict's frames will start), or an address just below the caller's frame. */
#if defined(__arm__) || defined(__aarch64__)
#define READ_SP(sp) __asm__ volatile("mov %0, sp" : "=r"(sp))
#elif defined(__x86_64__)
#define READ_SP(sp) __asm__ volatile("mov %%rsp, %0" : "=r"(sp))
#else
#define READ_SP(sp) ((sp) = (uintptr_t)__builtin_frame_address(0) - 256u)
#endif

int main(int argc, char **argv)
{
    if (argc != 4)
        return fail("usage: harness in.bin out.bin count");
    const long count = strtol(argv[3], NULL, 10);
    FILE *fin = fopen(argv[1], "rb");
    FILE *fout = fopen(argv[2], "wb");
    if (fin == NULL || fout == NULL)
        return fail("cannot open the input or output file");

    /* The region to paint: below the stack pointer, above the heap (newlib). It is painted
       and scanned here, in main, with no call in between: nothing else uses that stack. */
    uintptr_t top;
    READ_SP(top);
    top &= ~(uintptr_t)3u;
    uintptr_t span = CG_STACK_PAINT;
#ifdef __NEWLIB__
    {
        uintptr_t heap_end = (uintptr_t)sbrk(0) + 1024u;
        if (heap_end < top && top - heap_end < span)
            span = (top - heap_end) & ~(uintptr_t)3u;
    }
#endif
    volatile uint32_t *lo = (volatile uint32_t *)(top - span), *hi = (volatile uint32_t *)top;
    unsigned long stack_used = 0;
#ifdef CG_COUNT
    cg_systick_start();
#endif

    for (long n = 0; n < count; ++n) {
        if (fread(in_buf, sizeof(float), IN_SIZE, fin) != (size_t)IN_SIZE)
            return fail("short read from the input file");
        int status;
#ifdef CG_COUNT
        uint64_t t0, t1;
#endif
        if (n == 0)
            for (volatile uint32_t *p = lo; p < hi; ++p)
                *p = CG_PATTERN;
#ifdef CG_COUNT
#ifdef CG_PROFILE_OPS
        hooks_on = 1;
#endif
        t0 = cg_systick_now();
#endif
        status = PREDICT(in_buf, out_buf);
#ifdef CG_COUNT
        t1 = cg_systick_now();
#ifdef CG_PROFILE_OPS
        hooks_on = 0;
#endif
#endif
        if (n == 0) {
            const volatile uint32_t *p = lo;
            while (p < hi && *p == CG_PATTERN)
                ++p;
            stack_used = (unsigned long)(top - (uintptr_t)p);
        }
#ifdef CG_COUNT
#ifdef CG_PROFILE_OPS
        printf("codegen-harness: image %ld hooks", n);
        for (int i = 0; i <= CG_PROFILE_OPS; ++i)
            printf(" %lu", (unsigned long)(hook_ticks[i] - t0));
        printf("\n");
#endif
        printf("codegen-harness: image %ld ticks %lu\n", n, (unsigned long)(t1 - t0));
#endif
        if (status != 0) {
            fprintf(stderr, "codegen-harness: predict returned %d for image %ld\n", status, n);
            return 3;
        }
        memset(workspace, 0xFF, sizeof workspace);         /* NaNs: reading unwritten memory shows */
        if (PREDICT_WS(in_buf, out_ws, workspace) != 0 || memcmp(out_buf, out_ws, sizeof out_buf) != 0) {
            fprintf(stderr, "codegen-harness: predict and predict_ws differ for image %ld\n", n);
            return 4;
        }
        if (fwrite(out_buf, sizeof(float), OUT_SIZE, fout) != (size_t)OUT_SIZE)
            return fail("short write to the output file");
    }
    if (fclose(fout) != 0)
        return fail("cannot close the output file");
    fclose(fin);
    printf("codegen-harness: %ld images, stack %lu bytes (painted %lu)\n", count, stack_used, (unsigned long)span);
    return 0;
}
