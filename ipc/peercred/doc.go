// Package peercred reads who is at the other end of a Unix socket: uid,
// gid and pid from SO_PEERCRED and the supplementary groups from
// SO_PEERGROUPS, as the kernel recorded them at connect time (not an NSS
// lookup).
//
// It imports the standard library and golang.org/x/sys/unix.
package peercred
