/*
 * profile.c - times each op of a host build generated with profiling hooks (codegen.build(net,
 * profile=True), `codegen build --profile`): <net>_predict calls <net>_profile_op(i) before op i
 * and <net>_profile_op(<NET>_PROFILE_OPS) after the last; each call records the monotonic clock.
 * <net>_profile_stamps copies the latest call's stamps (nanoseconds) out.
 *
 * Build: compiled into the network's shared library with -DCG_PREFIX=net -DCG_MAX_STAMPS=<ops + 1>.
 * One predict at a time: the stamps are one static array (the library times, it does not serve).
 */
#define _POSIX_C_SOURCE 199309L
#include <time.h>

#define CG_CAT2(a, b) a##b
#define CG_CAT(a, b) CG_CAT2(a, b)

static long long cg_stamps[CG_MAX_STAMPS];

void CG_CAT(CG_PREFIX, _profile_op)(int op);
int CG_CAT(CG_PREFIX, _profile_stamps)(long long *out, int n);

void CG_CAT(CG_PREFIX, _profile_op)(int op)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (op >= 0 && op < CG_MAX_STAMPS)
        cg_stamps[op] = (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int CG_CAT(CG_PREFIX, _profile_stamps)(long long *out, int n)
{
    int i;
    for (i = 0; i < n && i < CG_MAX_STAMPS; ++i)
        out[i] = cg_stamps[i];
    return i;
}
