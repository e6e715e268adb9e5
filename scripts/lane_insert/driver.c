// Times emit_load_mem.ll's two loops on one thread: nanoseconds per loaded word, best of five passes over 2^24
// words (64 MiB).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int v8i __attribute__((vector_size(32)));
typedef float v8f __attribute__((vector_size(32)));
v8i load_lanes_i32(const int *a, long n, v8i mask);
v8f load_lanes_f32(const float *a, long n, v8i mask);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    const long n = 1L << 24;
    float *a = aligned_alloc(64, n * sizeof(float));
    if (!a) return 2;
    for (long i = 0; i < n; i++) a[i] = (float)(i & 1023);
    v8i all = {-1, -1, -1, -1, -1, -1, -1, -1};
    double best_i32 = 1e9, best_f32 = 1e9;
    unsigned sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now();
        v8i x = load_lanes_i32((const int *)a, n, all);
        double t1 = now();
        v8f y = load_lanes_f32(a, n, all);
        double t2 = now();
        sink += (unsigned)x[1] + (unsigned)y[1];
        if (t1 - t0 < best_i32) best_i32 = t1 - t0;
        if (t2 - t1 < best_f32) best_f32 = t2 - t1;
    }
    printf("i32 lanes (as llvmpipe loads storage words): %.2f ns per word\n", 1e9 * best_i32 / n);
    printf("f32 lanes (control):                         %.2f ns per word\n", 1e9 * best_f32 / n);
    return sink == 42u;  // keeps the sums live
}
