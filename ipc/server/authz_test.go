package server

import (
	"testing"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/peercred"
)

func TestDecide(t *testing.T) {
	const adm = 990
	cases := []struct {
		name  string
		cred  peercred.Cred
		gid   int64
		admin bool
	}{
		{"root", peercred.Cred{UID: 0, GID: 0}, adm, true},
		{"root without admin group", peercred.Cred{UID: 0}, -1, true},
		{"primary group", peercred.Cred{UID: 1000, GID: adm}, adm, true},
		{"supplementary group", peercred.Cred{UID: 1000, GID: 1000, Groups: []uint32{20, adm}}, adm, true},
		{"plain user", peercred.Cred{UID: 1000, GID: 1000, Groups: []uint32{20, 27}}, adm, false},
		{"no admin group configured", peercred.Cred{UID: 1000, GID: 0, Groups: []uint32{0}}, -1, false},
		{"gid 0 is not admin by itself", peercred.Cred{UID: 1000, GID: 0}, adm, false},
	}
	for _, c := range cases {
		if got := Decide(c.cred, "u", c.gid); got.Admin != c.admin {
			t.Errorf("%s: admin = %v, want %v", c.name, got.Admin, c.admin)
		}
	}
}

func TestAllowedFailsClosed(t *testing.T) {
	root := Principal{UID: 0, Name: "root", Admin: true}
	admin := Principal{UID: 5, Name: "adm", Admin: true}
	alice := Principal{UID: 1000, Name: "alice"}
	nameless := Principal{UID: 1001}
	cases := []struct {
		perm    Perm
		p       Principal
		account string
		want    bool
	}{
		{PermAnyone, nameless, "", true},
		{PermSelf, alice, "alice", true},
		{PermSelf, alice, "bob", false},
		{PermSelf, alice, "", false},
		{PermSelf, nameless, "", false}, // no name never matches an empty account
		{PermSelf, admin, "bob", true},
		{PermSelfOrRoot, admin, "bob", false},
		{PermSelfOrRoot, root, "bob", true},
		{PermSelfOrRoot, alice, "alice", true},
		{PermAdmin, alice, "alice", false},
		{PermAdmin, admin, "", true},
		{PermRoot, admin, "", false},
		{PermRoot, root, "", true},
		{Perm(99), root, "", false},
	}
	for _, c := range cases {
		if got := allowed(c.perm, c.p, c.account); got != c.want {
			t.Errorf("allowed(%s, %+v, %q) = %v, want %v", c.perm, c.p, c.account, got, c.want)
		}
	}
}

func TestSlotsKeepRootReserve(t *testing.T) {
	s := newSlots(Limits{Max: 6, Reserve: 2, PerUID: 3})
	for range 3 {
		if err := s.acquire(1000); err != nil {
			t.Fatal(err)
		}
	}
	if s.acquire(1000) == nil {
		t.Fatal("per-uid limit not enforced")
	}
	if err := s.acquire(1001); err != nil {
		t.Fatal(err)
	}
	if s.acquire(1002) == nil {
		t.Fatal("users took root's reserve")
	}
	for range 2 {
		if err := s.acquire(0); err != nil {
			t.Fatalf("root refused while its reserve is free: %v", err)
		}
	}
	if s.acquire(0) == nil {
		t.Fatal("root went past Max")
	}
	s.release(1000)
	if err := s.acquire(1002); err != nil {
		t.Fatalf("slot not released: %v", err)
	}
}

// TestMayReceive: a user's event stream carries only security events of
// their own account; events naming no account, and key hotplug, reach
// admins only; a uid without a user name receives nothing.
func TestMayReceive(t *testing.T) {
	admin := Principal{UID: 5, Name: "adm", Admin: true}
	alice := Principal{UID: 1000, Name: "alice"}
	nameless := Principal{UID: 4242}
	audit := func(account string) api.Event {
		return api.Event{Event: "audit", Audit: &api.AuditEvent{Action: "x", Account: account}}
	}
	keyAdded := api.Event{Event: "key_added", Key: &api.Key{ID: "k", Serial: "SN-1"}}
	cases := []struct {
		p    Principal
		e    api.Event
		want bool
	}{
		{admin, audit(""), true},
		{admin, audit("alice"), true},
		{admin, keyAdded, true},
		{alice, audit("alice"), true},
		{alice, audit("bob"), false},
		{alice, audit(""), false}, // a backup, a token import
		{alice, keyAdded, false},
		{alice, api.Event{Event: "audit"}, false},
		{nameless, audit(""), false},
		{nameless, keyAdded, false},
		{nameless, audit("alice"), false},
	}
	for i, c := range cases {
		if got := mayReceive(c.p, c.e); got != c.want {
			t.Errorf("case %d: mayReceive(%+v, %s %+v) = %v, want %v", i, c.p, c.e.Event, c.e.Audit, got, c.want)
		}
	}
}
