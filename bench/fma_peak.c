/* The CPU's float32 multiply-add peak, the ceiling under every GEMM in `npm run bench:engine`: THREADS
 * threads each run 12 independent chains of the widest vector FMA the compiler targets (-march=native:
 * AVX-512, AVX2 or SSE), so that neither latency nor memory bounds them.
 * Usage: fma_peak THREADS REPS; prints {"threads":T,"vector_bytes":B,"gflops":G} (best of REPS). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#elif defined(__AVX__)
#define VECTOR_BYTES 32
#else
#define VECTOR_BYTES 16
#endif
typedef float vec __attribute__((vector_size(VECTOR_BYTES)));
enum { CHAINS = 12, LANES = VECTOR_BYTES / 4 };
static const long ITERS = 50000000;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void* chains(void* out) {
  vec acc[CHAINS], a, b;
  for (int l = 0; l < LANES; l++) a[l] = 0.99999f, b[l] = 1e-6f;
  for (int i = 0; i < CHAINS; i++)
    for (int l = 0; l < LANES; l++) acc[i][l] = (float)i;
  for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 12  // the chains stay in registers
    for (int i = 0; i < CHAINS; i++) acc[i] = acc[i] * a + b;
  }
  float sum = 0;
  for (int i = 0; i < CHAINS; i++) sum += acc[i][0];
  *(float*)out = sum;  // keeps the loop
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fma_peak THREADS REPS\n");
    return 2;
  }
  const int threads = atoi(argv[1]), reps = atoi(argv[2]);
  pthread_t* ids = malloc(sizeof(pthread_t) * threads);
  float* sums = malloc(sizeof(float) * threads);
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    const double t = now();
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, chains, &sums[i]);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    const double s = now() - t;
    if (s < best) best = s;
  }
  const double flops = 2.0 * LANES * CHAINS * ITERS * threads;
  printf("{\"threads\":%d,\"vector_bytes\":%d,\"gflops\":%.1f}\n", threads, VECTOR_BYTES, flops / best / 1e9);
  free(ids);
  free(sums);
  return 0;
}
