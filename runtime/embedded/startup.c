/*
 * startup.c - minimal Cortex-M start-up for running generated networks under QEMU
 * (mps2-an386/an500, mps3-an547) with newlib's semihosting C library (rdimon).
 *
 * - The vector table (16 system entries) goes first in the image (section .vectors); the
 *   initial stack pointer is __stack_top from the linker script (flat.ld).
 * - Reset_Handler enables the FPU (CPACR CP10/CP11 full access) before any floating-point
 *   instruction can run, then enters newlib's crt0 (_start), which clears .bss, asks the
 *   debugger (QEMU) for the heap and stack through SYS_HEAPINFO, and calls main.
 *   With -DCG_NO_CRT0 it clears .bss and calls main itself (a firmware without newlib's
 *   start-up code: the footprint link).
 * - SysTick_Handler is weak: the harness defines it to count the timer's wraps (systick.h).
 * - Every fault ends the program through semihosting SYS_EXIT with a run-time error, so
 *   QEMU exits with a non-zero status instead of spinning until the timeout.
 */
#include <stdint.h>

extern uint32_t __stack_top;
extern uint32_t __bss_start__, __bss_end__;
int main(int argc, char **argv);
void _start(void);
void Reset_Handler(void);
void Fault_Handler(void);
/* The harness counts SysTick's wraps (systick.h); elsewhere a SysTick exception is a fault. */
void SysTick_Handler(void) __attribute__((weak, alias("Fault_Handler")));

/* SYS_WRITE0 then SYS_EXIT(ADP_Stopped_RunTimeErrorUnknown): QEMU prints and exits 1. */
static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

void Fault_Handler(void)
{
    semihost(0x04u, "codegen-harness: fault (HardFault/MemManage/BusFault/UsageFault/NMI)\n");
    semihost(0x18u, (const void *)0x20023u);    /* 32-bit ARM: r1 is the reason code itself */
    for (;;) {
    }
}

void Reset_Handler(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;                       /* CP10, CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
#ifdef CG_NO_CRT0
    for (uint32_t *p = &__bss_start__; p < &__bss_end__; ++p)
        *p = 0;
    (void)main(0, 0);
    for (;;) {
    }
#else
    _start();
#endif
}

/* The vector table: the initial stack pointer, then the 15 system exception handlers. */
struct cg_vector_table {
    uint32_t *initial_sp;
    void (*handler[15])(void);
};

__attribute__((section(".vectors"), used))
const struct cg_vector_table cg_vectors = {
    &__stack_top,
    {
        Reset_Handler,
        Fault_Handler,              /* NMI */
        Fault_Handler,              /* HardFault */
        Fault_Handler,              /* MemManage */
        Fault_Handler,              /* BusFault */
        Fault_Handler,              /* UsageFault */
        0, 0, 0, 0,
        Fault_Handler,              /* SVCall */
        Fault_Handler,              /* DebugMon */
        0,
        Fault_Handler,              /* PendSV */
        SysTick_Handler,            /* SysTick */
    },
};
