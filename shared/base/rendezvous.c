/* rendezvous.c — see rendezvous.h.
 *
 * DESIGN. Zuul's launcher scores "<launcher>-<key>" with mmh3; any good 64-bit
 * mix does: FNV-1a over member, a NUL separator and key (so "ab"+"c" and
 * "a"+"bc" differ), then splitmix64's finaliser, because FNV alone leaves
 * strings that differ only in their last bytes with close hashes. */
#include "rendezvous.h"

#include <string.h>

static uint64_t fnv1a(uint64_t h, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

static uint64_t mix(uint64_t z) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

uint64_t rendezvous_score(const char *member, const char *key) {
        uint64_t h = 0xcbf29ce484222325ULL;
        h = fnv1a(h, member, strlen(member) + 1);
        h = fnv1a(h, key, strlen(key));
        return mix(h);
}

long rendezvous_owner(const char *const *members, size_t n, const char *key) {
        long best = -1;
        uint64_t best_score = 0;
        for (size_t i = 0; i < n; i++) {
                if (!members[i]) continue;
                uint64_t s = rendezvous_score(members[i], key);
                if (best < 0 || s > best_score || (s == best_score && strcmp(members[i], members[best]) < 0)) {
                        best = (long)i;
                        best_score = s;
                }
        }
        return best;
}
