/*
 * main_min.c - the smallest firmware that runs a generated network: static input and output
 * buffers and one call of <net>_predict. It is linked (never run) with startup.c
 * (-DCG_NO_CRT0) to measure what the network costs in flash and RAM and which library
 * members it pulls in (the map file).
 */
#include CG_HEADER

#define CG_CAT2(a, b) a##b
#define CG_CAT(a, b) CG_CAT2(a, b)
#define PREDICT CG_CAT(CG_PREFIX, _predict)
#define IN_SIZE CG_CAT(CG_MACRO, _IN_SIZE)
#define OUT_SIZE CG_CAT(CG_MACRO, _OUT_SIZE)

#ifdef CG_PROFILE
/* A network generated with profiling hooks calls this between its ops (the harness times them). */
void CG_CAT(CG_PREFIX, _profile_op)(int op);
void CG_CAT(CG_PREFIX, _profile_op)(int op)
{
    (void)op;
}
#endif

float cg_input[IN_SIZE];
float cg_output[OUT_SIZE];

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return PREDICT(cg_input, cg_output);
}
