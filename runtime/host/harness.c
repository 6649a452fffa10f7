/*
 * harness.c - runs a generated network on inputs read from a file, for tests on the host
 * (under AddressSanitizer/UndefinedBehaviorSanitizer or valgrind).
 *
 * Build: cc -std=c99 -DCG_HEADER='"net.h"' -DCG_PREFIX=net -DCG_MACRO=NET harness.c net.c net_weights.c -lm
 * Run:   ./harness in.bin out.bin count ws|static
 *
 * Every image gets its own heap buffers of exactly the documented sizes, so a write past
 * the end of the output or the workspace is caught by the sanitizer; the workspace is
 * filled with NaN first, so reading memory the network never wrote shows in the result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include CG_HEADER

#define CG_CAT2(a, b) a##b
#define CG_CAT(a, b) CG_CAT2(a, b)
#define PREDICT_WS CG_CAT(CG_PREFIX, _predict_ws)
#define PREDICT CG_CAT(CG_PREFIX, _predict)
#define IN_SIZE CG_CAT(CG_MACRO, _IN_SIZE)
#define OUT_SIZE CG_CAT(CG_MACRO, _OUT_SIZE)
#define ARENA_BYTES CG_CAT(CG_MACRO, _ARENA_BYTES)
#define ERR_NULL CG_CAT(CG_MACRO, _ERR_NULL)

static int fail(const char *what)
{
    fprintf(stderr, "harness: %s\n", what);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return fail("usage: harness in.bin out.bin count ws|static");
    const long count = strtol(argv[3], NULL, 10);
    const int use_static = strcmp(argv[4], "static") == 0;
    FILE *fin = fopen(argv[1], "rb");
    FILE *fout = fopen(argv[2], "wb");
    if (fin == NULL || fout == NULL)
        return fail("cannot open the input or output file");

    for (long n = 0; n < count; ++n) {
        float *in = malloc(sizeof(float) * IN_SIZE);
        float *out = malloc(sizeof(float) * OUT_SIZE);
        void *ws = malloc(ARENA_BYTES > 0 ? ARENA_BYTES : 1);
        if (in == NULL || out == NULL || ws == NULL)
            return fail("out of memory");
        if (fread(in, sizeof(float), IN_SIZE, fin) != (size_t)IN_SIZE)
            return fail("short input file");
        for (size_t i = 0; i < ARENA_BYTES / sizeof(float); ++i)
            ((float *)ws)[i] = NAN;
        if (PREDICT_WS(NULL, out, ws) != ERR_NULL || PREDICT_WS(in, NULL, ws) != ERR_NULL)
            return fail("a NULL pointer was not refused");
        const int status = use_static ? PREDICT(in, out) : PREDICT_WS(in, out, ws);
        if (status != 0)
            return fail("predict returned an error");
        if (fwrite(out, sizeof(float), OUT_SIZE, fout) != (size_t)OUT_SIZE)
            return fail("cannot write the output");
        free(in);
        free(out);
        free(ws);
    }
    fclose(fin);
    return fclose(fout) == 0 ? 0 : fail("cannot close the output");
}
