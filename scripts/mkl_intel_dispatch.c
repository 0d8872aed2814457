/* For `make test-kernels` only: MKL picks its fast kernels (AVX2, AVX-512) only on CPUs whose
 * vendor check, mkl_serv_intel_cpu_true(), says Intel; on AMD it runs generic paths and ignores
 * MKL_ENABLE_INSTRUCTIONS. Preloaded (LD_PRELOAD), this answer makes MKL dispatch as on an Intel
 * CPU with the same instruction set, so the numeric tests also run on the kernels a user's Intel
 * machine runs (issue 27: the AVX-512 Xeon whose batch-of-one matmul differed by 1 ulp). Never
 * used outside the tests. On an Intel CPU it changes nothing. */
int mkl_serv_intel_cpu_true(void) { return 1; }
