package peercred

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGetOnRealSocket connects to a real Unix socket and checks that the
// server side sees this process.
func TestGetOnRealSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("unix", path)
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, err := Get(c)
	if err != nil {
		t.Fatal(err)
	}
	if cred.UID != uint32(os.Getuid()) || cred.GID != uint32(os.Getgid()) || cred.PID != int32(os.Getpid()) {
		t.Errorf("cred = %+v, want uid %d gid %d pid %d", cred, os.Getuid(), os.Getgid(), os.Getpid())
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if !slices.Contains(cred.Groups, uint32(g)) {
			t.Errorf("group %d missing from %v", g, cred.Groups)
		}
	}
}

func TestDecodeGroupsKeepsZero(t *testing.T) {
	b := []byte{0, 0, 0, 0, 5, 0, 0, 0}
	if got := decodeGroups(b); !slices.Equal(got, []uint32{0, 5}) {
		t.Errorf("decodeGroups = %v", got)
	}
}
