/*
 * cuda_emu.h - runs codegen's generated CUDA on the CPU (no GPU, no CUDA toolkit needed).
 *
 * The generated <name>.cu is compiled as C++17 by the host compiler with
 * -DCODEGEN_CUDA_EMULATION; it then includes this header instead of <cuda_runtime.h>, and its
 * one launch macro calls cuda_emu_launch() instead of kernel<<<grid, block, 0, stream>>>().
 *
 * Execution model (what makes the emulation faithful enough to find indexing and barrier bugs):
 *
 *  - Blocks run one after another, in the order blockIdx.z, .y, .x.
 *  - Every thread of a block is a cooperative fiber (POSIX ucontext) with its own stack
 *    (guard page below it, so an overflow faults instead of corrupting memory).
 *  - __syncthreads() is a real barrier: the calling fiber stops and the next one runs; only
 *    when EVERY thread of the block has arrived (or ended) do the waiting ones continue.
 *    Between two barriers the threads run one at a time, in an order set by the environment
 *    variable CUDA_EMU_SCHEDULE: "forward" (threadIdx order, the default), "reverse", or
 *    "shuffle" (a new seeded permutation each round; CUDA_EMU_SEED, default 1). A kernel that
 *    reads shared memory another thread writes without a barrier in between gets stale data
 *    under at least one of these orders.
 *  - A block where some threads wait at a barrier while others have returned is an error
 *    ("barrier divergence", undefined behaviour on a GPU): the launch fails with
 *    cudaErrorLaunchFailure and a message on stderr.
 *  - __shared__ variables are function-local statics: one copy, used by the fibers of the
 *    block that runs (blocks never run concurrently). Unlike a GPU, their contents survive
 *    from one block to the next (so a read of never-written shared memory is not detected).
 *  - threadIdx, blockIdx, blockDim and gridDim are globals set by the scheduler before it
 *    resumes a fiber. Everything here has internal linkage, so each generated network (one
 *    translation unit) has its own scheduler, whose mutex runs one of its kernels at a time.
 *  - The runtime API subset the generated host code uses (cudaMalloc, cudaMemcpy[Async],
 *    streams, events, errors, ...) works on host memory; streams are synchronous.
 *
 * Only what codegen's templates use is provided: no warp intrinsics, atomics, textures,
 * dynamic shared memory or cooperative groups. Linux/glibc (ucontext, mmap).
 */
#ifndef CODEGEN_CUDA_EMU_H
#define CODEGEN_CUDA_EMU_H

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Only C headers: this file is parsed once per generated network, and the C++ standard
 * library headers would triple the compile time of a small network. */

/* ------------------------------------------------------------------ qualifiers */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
/* __restrict__ is a GNU C++ keyword already. */

/* ------------------------------------------------------------------ built-in variables */
struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

/* ------------------------------------------------------------------ runtime types */
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

struct CUstream_st {
    int id;
};
typedef struct CUstream_st *cudaStream_t;

struct CUevent_st {
    double when_ms;
};
typedef struct CUevent_st *cudaEvent_t;

/* Everything below has internal linkage (an unnamed namespace): every translation unit, so
 * every generated network, has its own scheduler, built-in variables and error state, even
 * when several are linked into one library or loaded into one process. */
namespace {

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

namespace cuda_emu {

/* ------------------------------------------------------------------ errors */
cudaError_t last_error = cudaSuccess;     /* returned (and cleared) by cudaGetLastError */
cudaError_t sticky_error = cudaSuccess;   /* a failed launch: every later call reports it */

inline cudaError_t fail(cudaError_t e)
{
    if (last_error == cudaSuccess)
        last_error = e;
    return e;
}

/* ------------------------------------------------------------------ fibers */
enum FiberState { READY, WAITING, DONE };

struct Fiber {
    ucontext_t context;
    char *stack;
    FiberState state;
};

struct Scheduler {
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;   /* one launch at a time */
    ucontext_t main;                       /* the launching thread's context */
    Fiber *fibers = nullptr;               /* `capacity` fibers */
    size_t *order = nullptr;               /* the order of a round */
    size_t capacity = 0;
    char *pool = nullptr;                  /* capacity stacks, each above a guard page */
    size_t pool_bytes = 0;
    size_t current = 0;                    /* the fiber that runs */
    void (*body)(void *) = nullptr;        /* the kernel call, bound to its arguments */
    void *body_arg = nullptr;
    uint64_t rng = 1;                      /* xorshift64 state of the shuffle */
};

Scheduler sched;

inline size_t page_size() { return (size_t)sysconf(_SC_PAGESIZE); }

/* Stack bytes per thread: CUDA_EMU_STACK_KB (default 64 KiB), rounded up to pages. */
inline size_t stack_bytes()
{
    static size_t bytes = 0;
    if (bytes == 0) {
        const char *env = getenv("CUDA_EMU_STACK_KB");
        size_t kb = env ? (size_t)strtoul(env, nullptr, 10) : 64;
        if (kb < 16)
            kb = 16;
        const size_t page = page_size();
        bytes = (kb * 1024 + page - 1) / page * page;
    }
    return bytes;
}

/* Makes room for n fibers; false if the stacks cannot be mapped. */
inline bool reserve(size_t n)
{
    if (sched.capacity >= n)
        return true;
    const size_t page = page_size(), slot = stack_bytes() + page;
    if (sched.pool != nullptr)
        munmap(sched.pool, sched.pool_bytes);
    free(sched.fibers);
    free(sched.order);
    sched.capacity = 0;
    sched.pool = nullptr;
    sched.fibers = (Fiber *)calloc(n, sizeof(Fiber));
    sched.order = (size_t *)calloc(n, sizeof(size_t));
    void *mem = mmap(nullptr, n * slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (sched.fibers == nullptr || sched.order == nullptr || mem == MAP_FAILED)
        return false;
    sched.pool = (char *)mem;
    sched.pool_bytes = n * slot;
    for (size_t i = 0; i < n; ++i) {
        char *guard = sched.pool + i * slot;
        mprotect(guard, page, PROT_NONE);      /* stacks grow down: overflowing faults here */
        sched.fibers[i].stack = guard + page;
        getcontext(&sched.fibers[i].context);
    }
    sched.capacity = n;
    return true;
}

/* A seeded permutation of order[0, n) (Fisher-Yates with xorshift64). */
inline void shuffle(size_t *order, size_t n)
{
    for (size_t i = n; i > 1; --i) {
        uint64_t x = sched.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sched.rng = x;
        const size_t j = (size_t)(x % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

inline void fiber_main()
{
    sched.body(sched.body_arg);
    sched.fibers[sched.current].state = DONE;
    /* returning resumes uc_link: the scheduler */
}

/* The scheduling order of a round: forward, reverse or a seeded shuffle. */
inline int schedule_mode()
{
    const char *env = getenv("CUDA_EMU_SCHEDULE");
    if (env == nullptr || strcmp(env, "forward") == 0 || env[0] == '\0')
        return 0;
    if (strcmp(env, "reverse") == 0)
        return 1;
    if (strcmp(env, "shuffle") == 0)
        return 2;
    fprintf(stderr, "cuda_emu: CUDA_EMU_SCHEDULE=%s is not forward, reverse or shuffle; using forward\n", env);
    return 0;
}

inline void set_thread(size_t i)
{
    threadIdx.x = (unsigned)(i % blockDim.x);
    threadIdx.y = (unsigned)(i / blockDim.x % blockDim.y);
    threadIdx.z = (unsigned)(i / ((size_t)blockDim.x * blockDim.y));
}

/* Runs one block to completion; false on barrier divergence. */
inline bool run_block(size_t nthreads, int mode)
{
    const size_t stack = stack_bytes();
    for (size_t i = 0; i < nthreads; ++i) {
        Fiber &f = sched.fibers[i];
        f.context.uc_stack.ss_sp = f.stack;
        f.context.uc_stack.ss_size = stack;
        f.context.uc_link = &sched.main;
        makecontext(&f.context, fiber_main, 0);
        f.state = READY;
    }
    for (;;) {
        size_t *order = sched.order;
        if (mode == 2)
            shuffle(order, nthreads);
        for (size_t k = 0; k < nthreads; ++k) {
            const size_t i = mode == 1 ? order[nthreads - 1 - k] : order[k];
            if (sched.fibers[i].state != READY)
                continue;
            sched.current = i;
            set_thread(i);
            swapcontext(&sched.main, &sched.fibers[i].context);
        }
        size_t waiting = 0, done = 0;
        for (size_t i = 0; i < nthreads; ++i) {
            waiting += sched.fibers[i].state == WAITING;
            done += sched.fibers[i].state == DONE;
        }
        if (waiting == 0)
            return true;                          /* every thread returned */
        if (done != 0) {
            fprintf(stderr, "cuda_emu: barrier divergence in block (%u, %u, %u): %zu thread(s) wait at "
                    "__syncthreads() while %zu have returned\n", blockIdx.x, blockIdx.y, blockIdx.z, waiting, done);
            return false;
        }
        for (size_t i = 0; i < nthreads; ++i)     /* everyone arrived: release the barrier */
            sched.fibers[i].state = READY;
    }
}

/* Runs every block of the grid, one after another (the lock is held). */
inline cudaError_t run_grid(dim3 grid, dim3 block, size_t nthreads, void (*body)(void *), void *arg)
{
    if (!reserve(nthreads))
        return fail(cudaErrorMemoryAllocation);
    const int mode = schedule_mode();
    if (mode == 2) {
        const char *seed = getenv("CUDA_EMU_SEED");
        sched.rng = seed ? strtoull(seed, nullptr, 10) | 1u : 1u;
    }
    for (size_t i = 0; i < nthreads; ++i)
        sched.order[i] = i;
    sched.body = body;
    sched.body_arg = arg;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                if (!run_block(nthreads, mode)) {
                    sticky_error = cudaErrorLaunchFailure;
                    return fail(cudaErrorLaunchFailure);
                }
            }
    return cudaSuccess;
}

/* Runs body(arg) as every thread of every block of the grid. */
inline cudaError_t run(dim3 grid, dim3 block, void (*body)(void *), void *arg)
{
    if (sticky_error != cudaSuccess)
        return fail(sticky_error);
    const size_t nthreads = (size_t)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u) {
        fprintf(stderr, "cuda_emu: invalid launch configuration grid (%u, %u, %u) block (%u, %u, %u)\n", grid.x,
                grid.y, grid.z, block.x, block.y, block.z);
        return fail(cudaErrorInvalidConfiguration);
    }
    pthread_mutex_lock(&sched.lock);
    const cudaError_t result = run_grid(grid, block, nthreads, body, arg);
    pthread_mutex_unlock(&sched.lock);
    return result;
}

/* The barrier: park this fiber until the scheduler has run every other thread of the block. */
inline void barrier()
{
    Fiber &f = sched.fibers[sched.current];
    f.state = WAITING;
    swapcontext(&f.context, &sched.main);
}

inline double now_ms()
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

template <typename Call>
void invoke(void *call)
{
    (*static_cast<Call *>(call))();
}

}  // namespace cuda_emu

inline void __syncthreads() { cuda_emu::barrier(); }

/* kernel<<<grid, block, 0, stream>>>(args...): arguments convert to the parameter types as in a call. */
template <typename... Params, typename... Args>
void cuda_emu_launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args... args)
{
    (void)stream;
    auto call = [&]() { kernel(args...); };
    cuda_emu::run(grid, block, &cuda_emu::invoke<decltype(call)>, &call);
}

/* ------------------------------------------------------------------ runtime API (host memory) */
inline cudaError_t cudaGetLastError()
{
    const cudaError_t e = cuda_emu::last_error;
    cuda_emu::last_error = cuda_emu::sticky_error;
    return e;
}

inline cudaError_t cudaPeekAtLastError() { return cuda_emu::last_error; }

inline const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

inline const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: barrier divergence)";
    }
    return "unknown error";
}

inline cudaError_t cudaGetDeviceCount(int *count)
{
    if (count == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    *count = 1;                               /* the CPU */
    return cudaSuccess;
}

inline cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : cuda_emu::fail(cudaErrorInvalidDevice);
}

inline cudaError_t cudaGetDevice(int *device)
{
    if (device == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

inline cudaError_t cudaMalloc(void **ptr, size_t bytes)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (ptr == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    /* 256-byte aligned like cudaMalloc; zero-filled (a GPU gives arbitrary contents) */
    *ptr = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (*ptr == nullptr)
        return cuda_emu::fail(cudaErrorMemoryAllocation);
    memset(*ptr, 0, (bytes + 255) / 256 * 256 + 256);
    return cudaSuccess;
}

template <typename T>
inline cudaError_t cudaMalloc(T **ptr, size_t bytes)
{
    return cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
}

inline cudaError_t cudaFree(void *ptr)
{
    free(ptr);
    return cudaSuccess;
}

inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if ((int)kind < 0 || (int)kind > 4 || (bytes != 0 && (dst == nullptr || src == nullptr)))
        return cuda_emu::fail(cudaErrorInvalidValue);
    if (bytes != 0)
        memmove(dst, src, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t stream = nullptr)
{
    (void)stream;
    return cudaMemcpy(dst, src, bytes, kind);
}

inline cudaError_t cudaMemset(void *dst, int value, size_t bytes)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (bytes != 0 && dst == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    memset(dst, value, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream = nullptr)
{
    (void)stream;
    return cudaMemset(dst, value, bytes);
}

inline cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (stream == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    *stream = new CUstream_st{1};
    return cudaSuccess;
}

inline cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    delete stream;
    return cudaSuccess;
}

/* Streams are synchronous: every call has finished when it returns. */
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cuda_emu::sticky_error; }
inline cudaError_t cudaDeviceSynchronize() { return cuda_emu::sticky_error; }

inline cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (event == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    *event = new CUevent_st{cuda_emu::now_ms()};
    return cudaSuccess;
}

inline cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    (void)stream;
    if (event == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    event->when_ms = cuda_emu::now_ms();
    return cudaSuccess;
}

inline cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    return event == nullptr ? cuda_emu::fail(cudaErrorInvalidValue) : cuda_emu::sticky_error;
}

inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop)
{
    if (ms == nullptr || start == nullptr || stop == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    *ms = (float)(stop->when_ms - start->when_ms);
    return cudaSuccess;
}

}  // unnamed namespace

#endif /* CODEGEN_CUDA_EMU_H */
