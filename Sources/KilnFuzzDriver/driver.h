#ifndef KILN_FUZZ_DRIVER_H
#define KILN_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>
// libFuzzer's entry for programs that keep their own main (LLVM >= 12). Only declared here;
// it is linked in by -sanitize=fuzzer, which `make fuzz` passes (see docs/testing.md).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
