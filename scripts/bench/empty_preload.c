/* empty_preload: a library that does nothing, built with the shim's
 * compile and link options (bench.cmake).  bench_core preloads it as its
 * third kind of process: what any LD_PRELOAD costs a fork and a start-up,
 * against which the shim's own cost is read. */
__attribute__((visibility("default"))) int forkshim_empty_preload;
