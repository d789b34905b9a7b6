/* rendezvous.h — rendezvous (highest-random-weight) hashing: which of a set of
 * members owns a key, so that launchers can split work without talking.
 *
 * Every member scores every key; the member with the highest score owns it.
 * When a member leaves, only its keys move (each to the next-best member);
 * when one joins, it takes only the keys it now scores highest on. All members
 * that see the same set agree without any coordination. Pure; any thread. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The score of MEMBER for KEY: a 64-bit hash of both (FNV-1a, then a
 * splitmix64 finaliser so that similar names spread well). */
uint64_t rendezvous_score(const char *member, const char *key);

/* Index of the owner of KEY among MEMBERS[0..n) (highest score; a tie goes to
 * the smaller name, so every caller picks the same one), or -1 when n == 0.
 * NULL members are skipped. */
long rendezvous_owner(const char *const *members, size_t n, const char *key);
