/* OpenBLAS cblas_sgemm GFLOPS on square row-major matrices, the peer of the engine's sgemm in
 * `npm run bench:engine`. Usage: openblas_sgemm N REPS; prints {"n":N,"gflops":G} (best of REPS). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: openblas_sgemm N REPS\n");
    return 2;
  }
  const int n = atoi(argv[1]), reps = atoi(argv[2]);
  float* a = malloc(sizeof(float) * n * n);
  float* b = malloc(sizeof(float) * n * n);
  float* c = malloc(sizeof(float) * n * n);
  srand(1);
  for (long i = 0; i < (long)n * n; i++) {
    a[i] = (float)rand() / RAND_MAX - 0.5f;
    b[i] = (float)rand() / RAND_MAX - 0.5f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    const double t = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    const double dt = now() - t;
    if (dt < best) best = dt;
  }
  printf("{\"n\":%d,\"gflops\":%.2f}\n", n, 2.0 * n * n * n / best / 1e9);
  free(a);
  free(b);
  free(c);
  return 0;
}
