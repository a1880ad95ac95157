/* A stand-in CUDA driver library (libcuda.so.1) reporting one integrated sm_87 GPU, so the
   GPU probe's ctypes path runs on machines without a driver. Only the calls the probe makes. */
#include <stddef.h>
#include <string.h>

int cuInit(unsigned int flags) { (void)flags; return 0; }
int cuDriverGetVersion(int *v) { *v = 12060; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return ordinal == 0 ? 0 : 101; }
int cuDeviceGetName(char *name, int len, int dev) { (void)dev; strncpy(name, "Fake Orin", (size_t)len); return 0; }
int cuDeviceGetAttribute(int *value, int attr, int dev) {
    (void)dev;
    *value = attr == 75 ? 8 : attr == 76 ? 7 : attr == 18 ? 1 : 0;
    return 0;
}
int cuDeviceTotalMem_v2(size_t *bytes, int dev) { (void)dev; *bytes = (size_t)8 << 30; return 0; }
