/* The project's own C code, linked into the static runtime. */
#include <stddef.h>
#include <stdint.h>

/* 32-bit FNV-1a hash of LENGTH bytes at DATA. */
uint32_t ffi_fnv1a(const unsigned char *data, size_t length)
{
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < length; i++) {
        hash ^= data[i];
        hash *= 16777619u;
    }
    return hash;
}
