package server

import (
	"errors"
	"slices"
	"testing"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/peercred"
)

func TestDecide(t *testing.T) {
	const adm = 990
	cases := []struct {
		name   string
		cred   peercred.Cred
		user   string
		member bool
		admin  bool
	}{
		{"root", peercred.Cred{UID: 0, GID: 0}, "root", false, true},
		{"root without a name", peercred.Cred{UID: 0}, "", false, true},
		{"member now", peercred.Cred{UID: 1000, GID: 1000}, "alice", true, true},
		{"member now, process without the group", peercred.Cred{UID: 1000, GID: 1000, Groups: []uint32{20}}, "alice", true, true},
		{"removed, process still holding the group", peercred.Cred{UID: 1000, GID: adm, Groups: []uint32{adm}}, "alice", false, false},
		{"plain user", peercred.Cred{UID: 1000, GID: 1000, Groups: []uint32{20, 27}}, "alice", false, false},
		{"no user name", peercred.Cred{UID: 4242, GID: adm, Groups: []uint32{adm}}, "", true, false},
		{"gid 0 is not admin by itself", peercred.Cred{UID: 1000, GID: 0}, "alice", false, false},
	}
	for _, c := range cases {
		if got := Decide(c.cred, c.user, c.member); got.Admin != c.admin {
			t.Errorf("%s: admin = %v, want %v", c.name, got.Admin, c.admin)
		}
	}
}

// TestAdminGroupAskedPerConnection: the group database is asked at each
// connection's first request, never for uid 0 or a uid without a name,
// and a failed lookup is no membership.
func TestAdminGroupAskedPerConnection(t *testing.T) {
	members := map[string]bool{}
	var asked []string
	var fail error
	s := New(Config{AdminGroup: "mfad-admin",
		LookupUser: func(uid uint32) string {
			return map[uint32]string{0: "root", 1000: "alice"}[uid]
		},
		InGroup: func(u, g string) (bool, error) {
			asked = append(asked, u+"@"+g)
			return members[u], fail
		}}, Backends{})
	conn := func(uid uint32) Principal {
		id := &identity{cred: peercred.Cred{UID: uid, GID: uid}, srv: s}
		p := id.principal()
		if again := id.principal(); again != p {
			t.Errorf("a connection's principal changed: %+v then %+v", p, again)
		}
		return p
	}
	if conn(1000).Admin {
		t.Error("alice is an admin before joining the group")
	}
	members["alice"] = true
	if !conn(1000).Admin {
		t.Error("alice is not an admin on the connection after joining the group")
	}
	members["alice"] = false
	if conn(1000).Admin {
		t.Error("alice is still an admin on the connection after leaving the group")
	}
	members["alice"], fail = true, errors.New("nss down")
	if conn(1000).Admin {
		t.Error("a failed group lookup made alice an admin")
	}
	if !conn(0).Admin || conn(4242).Admin {
		t.Error("uid 0 must be an admin, a nameless uid must not")
	}
	if want := []string{"alice@mfad-admin", "alice@mfad-admin", "alice@mfad-admin", "alice@mfad-admin"}; !slices.Equal(asked, want) {
		t.Errorf("group lookups %v, want %v (one per connection, none for root or nameless uids)", asked, want)
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
