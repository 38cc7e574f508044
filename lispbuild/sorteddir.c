/* Directory listings in name order, whatever order the file system keeps
 * (ext4 orders them by a hash of the name seeded per file system, tmpfs by
 * creation). Preloaded (LD_PRELOAD) into the SBCL of a release dump only:
 * SBCL and ASDF allocate as they read a listing, and the order would move
 * the allocation addresses that SBCL's hash codes are drawn from, so two
 * machines would dump different images from the same sources.
 *
 * The first readdir of a stream reads the whole directory and sorts it.
 * Its memory is allocated in sizes that depend on the entries' total size
 * and number only, never on their order: the C heap's layout, which a
 * library may save a pointer into, must not depend on it either. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct listing {
    DIR *dir;
    char *bytes;             /* the entries, each d_reclen bytes, in readdir order */
    size_t *offsets;         /* where each starts in bytes, sorted by name */
    size_t count, next;
    struct listing *older;
};

static struct listing *listings;

static struct dirent64 *(*next_entry)(DIR *);
static int (*close_stream)(DIR *);

static char *sort_base;

static int by_name(const void *a, const void *b)
{
    const struct dirent64 *x = (const void *)(sort_base + *(const size_t *)a);
    const struct dirent64 *y = (const void *)(sort_base + *(const size_t *)b);
    return strcmp(x->d_name, y->d_name);
}

/* Capacity doubling from a fixed start: the sizes asked for follow from
 * the total alone. */
static void *grow(void *block, size_t *capacity, size_t needed)
{
    size_t size = *capacity ? *capacity : 4096;
    while (size < needed)
        size *= 2;
    if (size == *capacity)
        return block;
    *capacity = size;
    return realloc(block, size);
}

static struct listing *read_listing(DIR *dir)
{
    struct listing *l;
    for (l = listings; l; l = l->older)
        if (l->dir == dir)
            return l;
    if (!next_entry)
        next_entry = (struct dirent64 *(*)(DIR *))dlsym(RTLD_NEXT, "readdir64");
    l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    size_t used = 0, room = 0, slots = 0;
    struct dirent64 *entry;
    while ((entry = next_entry(dir))) {
        l->bytes = grow(l->bytes, &room, used + entry->d_reclen);
        l->offsets = grow(l->offsets, &slots, (l->count + 1) * sizeof *l->offsets);
        if (!l->bytes || !l->offsets)
            abort();
        memcpy(l->bytes + used, entry, entry->d_reclen);
        l->offsets[l->count++] = used;
        used += entry->d_reclen;
    }
    sort_base = l->bytes;
    if (l->count)
        qsort(l->offsets, l->count, sizeof *l->offsets, by_name);
    l->dir = dir;
    l->older = listings;
    listings = l;
    return l;
}

struct dirent64 *readdir64(DIR *dir)
{
    struct listing *l = read_listing(dir);
    if (!l || l->next == l->count)
        return NULL;
    return (struct dirent64 *)(l->bytes + l->offsets[l->next++]);
}

/* On x86-64 struct dirent and struct dirent64 are the same. */
struct dirent *readdir(DIR *dir)
{
    return (struct dirent *)readdir64(dir);
}

void rewinddir(DIR *dir)
{
    struct listing *l = read_listing(dir);
    if (l)
        l->next = 0;
}

int closedir(DIR *dir)
{
    if (!close_stream)
        close_stream = (int (*)(DIR *))dlsym(RTLD_NEXT, "closedir");
    for (struct listing **p = &listings; *p; p = &(*p)->older)
        if ((*p)->dir == dir) {
            struct listing *l = *p;
            *p = l->older;
            free(l->bytes);
            free(l->offsets);
            free(l);
            break;
        }
    return close_stream(dir);
}
