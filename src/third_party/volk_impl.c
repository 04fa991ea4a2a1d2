/* volk's implementation, compiled with every symbol renamed (see cmake/VktrainDependencies.cmake). */
#include "volk_rename.h"
#include "volk.c"
