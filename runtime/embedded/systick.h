/*
 * systick.h - counting executed instructions on QEMU's Cortex-M boards with the SysTick timer.
 *
 * Under `qemu-system-arm -icount shift=0` the virtual clock advances one nanosecond per
 * executed guest instruction, and the boards' SysTick counts their processor clock in that
 * virtual time: one tick is 1e9 / clock instructions (40 on mps2-an386/an500 at 25 MHz, 31.25 on
 * mps3-an547 at 32 MHz). Two readings around a call give the instructions it executed, the same
 * for the same binary on every run (codegen/devices.py holds each board's clock).
 *
 * SysTick is a 24-bit down counter; an exception at every reload counts the wraps, so a span
 * may be longer than 2^24 ticks. Reading the counter is an I/O access, after which QEMU takes
 * a pending exception, so the loop in cg_systick_now sees a wrap that happened during the read.
 * (On real hardware SysTick counts cycles, not instructions.)
 */
#ifndef CG_SYSTICK_H
#define CG_SYSTICK_H

#include <stdint.h>

#define CG_SYST_CSR (*(volatile uint32_t *)0xE000E010u)   /* control and status */
#define CG_SYST_RVR (*(volatile uint32_t *)0xE000E014u)   /* reload value */
#define CG_SYST_CVR (*(volatile uint32_t *)0xE000E018u)   /* current value (counts down) */
#define CG_SYST_MAX 0x00FFFFFFu

/* Wraps of the counter since cg_systick_start, counted by SysTick_Handler. */
extern volatile uint32_t cg_systick_wraps;

/* Start counting from zero: the processor clock, the reload exception on. */
static inline void cg_systick_start(void)
{
    CG_SYST_CSR = 0u;
    cg_systick_wraps = 0u;
    CG_SYST_RVR = CG_SYST_MAX;
    CG_SYST_CVR = 0u;                      /* any write clears it; it reloads on the next tick */
    CG_SYST_CSR = 7u;                      /* ENABLE | TICKINT | CLKSOURCE (processor clock) */
    while (CG_SYST_CVR == 0u) {            /* until that reload (no exception: it did not count to 0) */
    }
}

/* Ticks since cg_systick_start. */
static inline uint64_t cg_systick_now(void)
{
    uint32_t wraps, value;
    do {
        wraps = cg_systick_wraps;
        value = CG_SYST_CVR;
    } while (wraps != cg_systick_wraps);
    return (uint64_t)wraps * (CG_SYST_MAX + 1u) + (CG_SYST_MAX - value);
}

#endif
