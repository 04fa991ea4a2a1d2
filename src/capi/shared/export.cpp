// libvktrain_c.so: the C API (include/vktrain/vktrain.h) as a shared library for ctypes, JNI and Swift. Its code is
// the whole static library linked in; only the vkt_* symbols are exported (export.map).
#include "vktrain/vktrain.h"
