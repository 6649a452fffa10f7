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
 *  - Tensor cores (nvcuda::wmma: TF32 m16n16k8, __half and __nv_bfloat16 m16n16k16, float
 *    accumulators): a fragment holds the WHOLE
 *    tile in every thread (num_elements is the tile's size, not the 4 or 8 of a GPU thread), so
 *    load_matrix_sync / mma_sync / store_matrix_sync are the warp's collective operations
 *    done by each thread on its own copy: the same values in every thread, as on a GPU where the
 *    warp holds the tile between its threads. A kernel may touch fragment elements only through
 *    loops over num_elements that do not depend on the layout (fill, conversion), as the CUDA
 *    documentation requires. wmma::__float_to_tf32 is PTX cvt.rna.tf32.f32: round to 10
 *    mantissa bits, to nearest, ties away from zero (inf and NaN unchanged). mma_sync reads a tf32
 *    operand as the GPU does when it was not converted: its low 13 mantissa bits are ignored
 *    (truncation); products and sums are exact in double and rounded once to float per
 *    k-step of 8, which a GPU's float accumulation matches within a few float ulps.
 *  - __dp4a (four int8 products added to an int) and 4-byte loads of int8 data, with the
 *    alignment a GPU needs checked (a misaligned-address fault).
 *  - CUDA graphs: stream capture records each launch (its arguments copied) instead of running
 *    it; cudaGraphLaunch runs the recorded launches in order. A memory copy on a capturing
 *    stream fails (cudaErrorStreamCaptureUnsupported), as one from pageable memory does on a GPU.
 *
 * Only what codegen's templates use is provided: no other warp intrinsics, atomics, textures,
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
#define __align__(n) __attribute__((aligned(n)))
/* __restrict__ is a GNU C++ keyword already. */

/* ------------------------------------------------------------------ built-in variables */
struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

/* One recorded launch of a stream capture: the kernel call bound to copies of its arguments. */
struct cuda_emu_launch_record {
    void (*run)(void *);
    void (*destroy)(void *);
    void *call;
    dim3 grid, block;
};

struct cuda_emu_recording {
    cuda_emu_launch_record *launches;
    size_t count, capacity;
    int refs;                          /* the graph and each executable graph made from it */
    bool invalid;                      /* something on the stream could not be captured */
};

/* ------------------------------------------------------------------ runtime types */
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

struct cuda_emu_recording;

struct CUstream_st {
    int id;
    cuda_emu_recording *capture;      /* non-null between cudaStreamBeginCapture and cudaStreamEndCapture */
};
typedef struct CUstream_st *cudaStream_t;

/* A graph and its executable form share one refcounted list of recorded launches. */
struct CUgraph_st {
    cuda_emu_recording *recording;
};
typedef struct CUgraph_st *cudaGraph_t;

struct CUgraphExec_st {
    cuda_emu_recording *recording;
};
typedef struct CUgraphExec_st *cudaGraphExec_t;

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

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
    cudaError_t fault = cudaSuccess;       /* set by a thread that did something a GPU faults on */
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
                if (sched.fault != cudaSuccess) {
                    sticky_error = sched.fault;
                    sched.fault = cudaSuccess;
                    return fail(sticky_error);
                }
            }
    return cudaSuccess;
}

/* A launch configuration a GPU accepts (said on stderr when not). */
inline bool valid_config(dim3 grid, dim3 block)
{
    const size_t nthreads = (size_t)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u) {
        fprintf(stderr, "cuda_emu: invalid launch configuration grid (%u, %u, %u) block (%u, %u, %u)\n", grid.x,
                grid.y, grid.z, block.x, block.y, block.z);
        return false;
    }
    return true;
}

/* Runs body(arg) as every thread of every block of the grid. */
inline cudaError_t run(dim3 grid, dim3 block, void (*body)(void *), void *arg)
{
    if (sticky_error != cudaSuccess)
        return fail(sticky_error);
    if (!valid_config(grid, block))
        return fail(cudaErrorInvalidConfiguration);
    const size_t nthreads = (size_t)block.x * block.y * block.z;
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

template <typename Call>
void destroy(void *call)
{
    delete static_cast<Call *>(call);
}

/* ------------------------------------------------------------------ stream capture, graphs */
inline void release(cuda_emu_recording *r)
{
    if (r == nullptr || --r->refs > 0)
        return;
    for (size_t i = 0; i < r->count; ++i)
        r->launches[i].destroy(r->launches[i].call);
    free(r->launches);
    free(r);
}

/* Appends a launch to a capture (which owns `call` from now on). */
inline void record(cuda_emu_recording *r, dim3 grid, dim3 block, void (*run)(void *), void (*destroy)(void *),
                   void *call)
{
    if (!valid_config(grid, block)) {
        r->invalid = true;
        destroy(call);
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    if (r->count == r->capacity) {
        const size_t capacity = r->capacity ? 2 * r->capacity : 16;
        void *grown = realloc(r->launches, capacity * sizeof *r->launches);
        if (grown == nullptr) {
            r->invalid = true;
            destroy(call);
            fail(cudaErrorMemoryAllocation);
            return;
        }
        r->launches = (cuda_emu_launch_record *)grown;
        r->capacity = capacity;
    }
    r->launches[r->count++] = cuda_emu_launch_record{run, destroy, call, grid, block};
}

/* A memory operation on stream: refused (and the capture invalidated) while it captures. */
inline bool capturing(cudaStream_t stream)
{
    if (stream == nullptr || stream->capture == nullptr)
        return false;
    stream->capture->invalid = true;
    fail(cudaErrorStreamCaptureUnsupported);
    return true;
}

/* ------------------------------------------------------------------ faults a GPU reports */
inline void fault(cudaError_t e, const char *what, const void *p, unsigned ldm)
{
    if (sched.fault == cudaSuccess) {
        fprintf(stderr, "cuda_emu: %s at %p, ldm %u, in block (%u, %u, %u) thread %u\n", what, p, ldm, blockIdx.x,
                blockIdx.y, blockIdx.z, threadIdx.x);
        sched.fault = e;
    }
}

}  // namespace cuda_emu

inline void __syncthreads() { cuda_emu::barrier(); }

/* kernel<<<grid, block, 0, stream>>>(args...): arguments convert to the parameter types as in a call. */
template <typename... Params, typename... Args>
void cuda_emu_launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args... args)
{
    auto call = [=]() { kernel(args...); };
    typedef decltype(call) Call;
    if (stream != nullptr && stream->capture != nullptr)      /* recorded, run by cudaGraphLaunch */
        cuda_emu::record(stream->capture, grid, block, &cuda_emu::invoke<Call>, &cuda_emu::destroy<Call>,
                         new Call(call));
    else
        cuda_emu::run(grid, block, &cuda_emu::invoke<Call>, &call);
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
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
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
    case cudaErrorMisalignedAddress: return "misaligned address (emulator: a wmma load or store)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: barrier divergence)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
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
    if (cuda_emu::capturing(stream))
        return cudaErrorStreamCaptureUnsupported;
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
    if (cuda_emu::capturing(stream))
        return cudaErrorStreamCaptureUnsupported;
    return cudaMemset(dst, value, bytes);
}

inline cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (stream == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    *stream = new CUstream_st{1, nullptr};
    return cudaSuccess;
}

inline cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (stream != nullptr)
        cuda_emu::release(stream->capture);
    delete stream;
    return cudaSuccess;
}

/* Streams are synchronous: every call has finished when it returns. */
inline cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    if (cuda_emu::capturing(stream))
        return cudaErrorStreamCaptureUnsupported;
    return cuda_emu::sticky_error;
}

/* Capture: the launches queued on stream are recorded, not run, until cudaStreamEndCapture. The
 * mode does not matter here (one host thread runs everything the emulator does). */
inline cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    (void)mode;
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (stream == nullptr)                     /* the legacy default stream cannot be captured */
        return cuda_emu::fail(cudaErrorStreamCaptureUnsupported);
    if (stream->capture != nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    stream->capture = (cuda_emu_recording *)calloc(1, sizeof(cuda_emu_recording));
    if (stream->capture == nullptr)
        return cuda_emu::fail(cudaErrorMemoryAllocation);
    stream->capture->refs = 1;
    return cudaSuccess;
}

inline cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    if (stream == nullptr || stream->capture == nullptr || graph == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    cuda_emu_recording *r = stream->capture;
    stream->capture = nullptr;
    *graph = nullptr;
    if (r->invalid) {
        cuda_emu::release(r);
        return cuda_emu::fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = new CUgraph_st{r};
    return cudaSuccess;
}

inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0)
{
    (void)flags;
    if (exec == nullptr || graph == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    ++graph->recording->refs;
    *exec = new CUgraphExec_st{graph->recording};
    return cudaSuccess;
}

/* Runs the recorded launches in order (streams are synchronous: done when it returns). */
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    if (cuda_emu::sticky_error != cudaSuccess)
        return cuda_emu::fail(cuda_emu::sticky_error);
    if (exec == nullptr)
        return cuda_emu::fail(cudaErrorInvalidValue);
    if (cuda_emu::capturing(stream))
        return cudaErrorStreamCaptureUnsupported;
    const cuda_emu_recording *r = exec->recording;
    for (size_t i = 0; i < r->count; ++i) {
        const cuda_emu_launch_record &l = r->launches[i];
        const cudaError_t e = cuda_emu::run(l.grid, l.block, l.run, l.call);
        if (e != cudaSuccess)
            return e;
    }
    return cudaSuccess;
}

inline cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    if (graph != nullptr)
        cuda_emu::release(graph->recording);
    delete graph;
    return cudaSuccess;
}

inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    if (exec != nullptr)
        cuda_emu::release(exec->recording);
    delete exec;
    return cudaSuccess;
}
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

/* ------------------------------------------------------------------ integer intrinsics */
/* __dp4a: c + the sum of the products of the four signed bytes of a and b (sm_61 and newer). */
inline int __dp4a(int a, int b, int c)
{
    const uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
    for (int i = 0; i < 32; i += 8)
        c += (int)(int8_t)(uint8_t)(ua >> i) * (int)(int8_t)(uint8_t)(ub >> i);
    return c;
}

/* Four bytes as an int (the emulation's form of *(const int *)p), checking the alignment a GPU needs. */
inline int cuda_emu_load4(const void *p)
{
    if ((uintptr_t)p % 4 != 0)
        cuda_emu::fault(cudaErrorMisalignedAddress, "4-byte load from a misaligned address", p, 0);
    int v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ------------------------------------------------------------------ __half and __nv_bfloat16 */
/* Bit patterns, converted as the CUDA intrinsics do: round to nearest even, overflow to inf
 * (half: from 65520 up), subnormals kept, NaN stays NaN. */
struct __half {
    uint16_t bits;
};
struct __nv_bfloat16 {
    uint16_t bits;
};

inline __half __float2half_rn(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u)                                  /* inf, NaN */
        return __half{(uint16_t)(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0u))};
    if (mag >= 0x477ff000u)                                  /* >= 65520: beyond the largest half */
        return __half{(uint16_t)(sign | 0x7c00u)};
    if (mag < 0x38800000u) {                                 /* below 2^-14: a subnormal half (units of 2^-24) */
        float a;
        memcpy(&a, &mag, sizeof a);
        return __half{(uint16_t)(sign | (uint32_t)nearbyintf(a * 16777216.0f))};
    }
    uint32_t h = (mag >> 13) - (112u << 10);                  /* rebias the exponent, keep 10 mantissa bits */
    const uint32_t rest = mag & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        ++h;
    return __half{(uint16_t)(sign | h)};
}

inline float __half2float(__half h)
{
    const uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16, exp = (h.bits >> 10) & 0x1fu, man = h.bits & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        const float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    x = sign | (exp == 31 ? 0x7f800000u | (man << 13) : ((exp + 112u) << 23) | (man << 13));
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return __nv_bfloat16{(uint16_t)((x >> 16) | 0x40u)};   /* NaN stays (quiet) NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return __nv_bfloat16{(uint16_t)(x >> 16)};
}

inline float __bfloat162float(__nv_bfloat16 b)
{
    const uint32_t x = (uint32_t)b.bits << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

inline float cuda_emu_to_float(float v) { return v; }
inline float cuda_emu_to_float(__half v) { return __half2float(v); }
inline float cuda_emu_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

/* ------------------------------------------------------------------ tensor cores (nvcuda::wmma) */
namespace nvcuda {
namespace wmma {

struct matrix_a;
struct matrix_b;
struct accumulator;
struct row_major;
struct col_major;
namespace precision {
struct tf32;
}
enum layout_t { mem_row_major, mem_col_major };

/* The rows and columns of a fragment's tile: A is M x K, B is K x N, the accumulator M x N. */
template <typename Use, int M, int N, int K> struct tile_shape;
template <int M, int N, int K> struct tile_shape<matrix_a, M, N, K> { enum { rows = M, cols = K }; };
template <int M, int N, int K> struct tile_shape<matrix_b, M, N, K> { enum { rows = K, cols = N }; };
template <int M, int N, int K> struct tile_shape<accumulator, M, N, K> { enum { rows = M, cols = N }; };

/* The whole tile, element (r, c) at x[r * cols + c], in every thread (see the top of this file). */
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  public:
    enum { rows = tile_shape<Use, M, N, K>::rows, cols = tile_shape<Use, M, N, K>::cols,
           num_elements = rows * cols };
    float x[num_elements];
};

/* PTX cvt.rna.tf32.f32: 10 mantissa bits, round to nearest, ties away from zero (adding half a
 * unit of the last kept bit to the magnitude); inf and NaN pass unchanged. */
inline float __float_to_tf32(float in)
{
    uint32_t u;
    memcpy(&u, &in, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&in, &u, sizeof in);
    return in;
}

/* What the tensor core reads of a float given as tf32: its top 19 bits (the low 13 dropped). */
inline double tf32_operand(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u &= 0xffffe000u;
    memcpy(&v, &u, sizeof v);
    return (double)v;
}

/* load/store_matrix_sync: the pointer must be 256-bit aligned and ldm a multiple of 16 bytes (4 floats,
 * 8 halves). */
inline bool check_matrix_pointer(const void *p, unsigned ldm, size_t element, const char *what)
{
    if (((uintptr_t)p % 32) == 0 && (ldm * element) % 16 == 0)
        return true;
    cuda_emu::fault(cudaErrorMisalignedAddress, what, p, ldm);
    return false;
}

/* What the tensor core reads of an operand: a float given as tf32 loses its low 13 bits; halves
 * and bfloat16s are exact in float. */
template <typename T> inline double operand(float v) { return (double)v; }
template <> inline double operand<precision::tf32>(float v) { return tf32_operand(v); }

template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout> &f, float v)
{
    for (int i = 0; i < f.num_elements; ++i)
        f.x[i] = v;
}

/* A or B from memory in the layout of the fragment's type. */
template <typename Use, int M, int N, int K, typename T, typename Layout, typename E>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const E *p, unsigned ldm)
{
    typedef fragment<Use, M, N, K, T, Layout> F;
    if (!check_matrix_pointer(p, ldm, sizeof(E), "wmma::load_matrix_sync of a misaligned tile"))
        return;
    const bool row = __is_same(Layout, row_major);
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.x[r * F::cols + c] = cuda_emu_to_float(row ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]);
}

template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm, layout_t layout)
{
    if (!check_matrix_pointer(p, ldm, sizeof(float), "wmma::load_matrix_sync of a misaligned tile"))
        return;
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c)
            f.x[r * N + c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
}

template <int M, int N, int K>
inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm, layout_t layout)
{
    if (!check_matrix_pointer(p, ldm, sizeof(float), "wmma::store_matrix_sync to a misaligned tile"))
        return;
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c)
            (layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]) = f.x[r * N + c];
}

/* d = a * b + c (tf32, __half or __nv_bfloat16 operands): exact products, the K of them and c
 * summed in double and rounded once to float. */
template <int M, int N, int K, typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, T, LA> &a,
                     const fragment<matrix_b, M, N, K, T, LB> &b, const fragment<accumulator, M, N, K, float> &c)
{
    float result[M * N];
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double s = (double)c.x[i * N + j];
            for (int k = 0; k < K; ++k)
                s += operand<T>(a.x[i * K + k]) * operand<T>(b.x[k * N + j]);
            result[i * N + j] = (float)s;
        }
    memcpy(d.x, result, sizeof result);      /* d may be c */
}

}  // namespace wmma
}  // namespace nvcuda

}  // unnamed namespace

#endif /* CODEGEN_CUDA_EMU_H */
