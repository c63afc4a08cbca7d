package server

import (
	"os/user"
	"slices"
	"sync"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/peercred"
)

// Principal is who a connection's peer is, as far as mfad is concerned.
type Principal struct {
	UID   uint32
	GID   uint32
	PID   int32
	Name  string // Unix user name of UID, "" when it has none
	Admin bool   // uid 0 or a member of the admin group
}

// Root reports whether the peer is uid 0.
func (p Principal) Root() bool { return p.UID == 0 }

// Actor is the principal as authn sees it.
func (p Principal) Actor() authn.Actor { return authn.Actor{UID: p.UID, Name: p.Name, Admin: p.Admin} }

// Decide maps a peer to a principal: uid 0 is an admin, and so is a peer
// whose user name the admin group lists now (adminMember, from the group
// database at this connection). The groups the peer's process carries do
// not count: a user removed from the group stops being an admin on their
// next connection, even from a shell that still holds the group. It reads
// nothing but its arguments.
func Decide(c peercred.Cred, name string, adminMember bool) Principal {
	p := Principal{UID: c.UID, GID: c.GID, PID: c.PID, Name: name}
	p.Admin = c.UID == 0 || (name != "" && adminMember)
	return p
}

// identity is a connection's peer: its credentials, read at accept, and
// the principal they map to, decided once, on the connection's first
// request (in its own goroutine, so that user and group lookups never hold
// up the accept loop).
type identity struct {
	cred peercred.Cred
	srv  *Server
	once sync.Once
	p    Principal
}

func (id *identity) principal() Principal {
	id.once.Do(func() {
		name := id.srv.userName(id.cred.UID)
		id.p = Decide(id.cred, name, id.srv.adminMember(id.cred.UID, name))
	})
	return id.p
}

// adminMember asks the group database whether the user is in the admin
// group now. A failed lookup is no membership.
func (s *Server) adminMember(uid uint32, name string) bool {
	if uid == 0 || name == "" || s.cfg.AdminGroup == "" {
		return false
	}
	ok, err := s.cfg.InGroup(name, s.cfg.AdminGroup)
	if err != nil {
		s.log.Debug("admin group lookup failed; not an admin", "uid", uid, "user", name, "group", s.cfg.AdminGroup, "err", err)
		return false
	}
	return ok
}

// inGroup is the default group lookup: the user's primary group and every
// group that lists them, through os/user (NSS with cgo, else /etc/group).
func inGroup(userName, group string) (bool, error) {
	g, err := user.LookupGroup(group)
	if err != nil {
		return false, err
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return false, err
	}
	if u.Gid == g.Gid {
		return true, nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return false, err
	}
	return slices.Contains(ids, g.Gid), nil
}

// Perm is the permission a route requires.
type Perm int

const (
	// PermAnyone: any local peer.
	PermAnyone Perm = iota
	// PermSelf: the account named in the path is the caller's own, or the caller is an admin.
	PermSelf
	// PermSelfBody: the account named in the request body is the caller's own, or the caller is an admin.
	PermSelfBody
	// PermSelfOrRoot: the caller's own account (path or body) or uid 0; admins do not qualify.
	PermSelfOrRoot
	// PermAdmin: uid 0 or a member of the admin group.
	PermAdmin
	// PermRoot: uid 0 only.
	PermRoot
	// PermRecoveryStarter: the uid that started the recovery named in the
	// path (checked by the recovery itself, which records that uid).
	PermRecoveryStarter
)

func (p Perm) String() string {
	switch p {
	case PermAnyone:
		return "anyone"
	case PermSelf:
		return "self"
	case PermSelfBody:
		return "self-body"
	case PermSelfOrRoot:
		return "self-or-root"
	case PermAdmin:
		return "admin"
	case PermRoot:
		return "root"
	case PermRecoveryStarter:
		return "recovery-starter"
	}
	return "unknown"
}

// allowed decides perm for p; account is the account the request names
// ("" when the route names none). It fails closed.
func allowed(perm Perm, p Principal, account string) bool {
	self := account != "" && p.Name != "" && p.Name == account
	switch perm {
	case PermAnyone:
		return true
	case PermSelf, PermSelfBody:
		return p.Admin || self
	case PermSelfOrRoot:
		return p.Root() || self
	case PermAdmin:
		return p.Admin
	case PermRoot:
		return p.Root()
	case PermRecoveryStarter:
		// Any peer reaches the recovery, which refuses every uid but the
		// one that started it (authn.Service.recoveryFor).
		return true
	}
	return false
}

// mayReceive decides whether an event of the stream reaches p. Admins
// receive every event; anyone else only the security events of their own
// account: the event must name an account, and p must have a user name
// equal to it. Events that name no account (backups, token imports, key
// hotplug with serials) go to admins only. It fails closed.
func mayReceive(p Principal, e api.Event) bool {
	if p.Admin {
		return true
	}
	return e.Audit != nil && e.Audit.Account != "" && p.Name != "" && e.Audit.Account == p.Name
}
