package e2e

import (
	"encoding/json"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// callWithCred makes one request from a helper process running with
// exactly the credentials in cred.
func callWithCred(t *testing.T, cred *syscall.Credential, sock, method, path string) answer {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "e2e.test"), "-test.run=^$")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "MFAD_E2E_HELPER=call", "MFAD_E2E_SOCK=" + sock,
		"MFAD_E2E_METHOD=" + method, "MFAD_E2E_PATH=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var a answer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return a
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestAdminGroupPerConnection: the admin group is read at each
// connection. A group created after mfad started counts; a user added to
// it with usermod is an admin on their next connection (from a process
// that does not even carry the group), and once removed is not, even from
// a process that still carries it. Real users and groups.
func TestAdminGroupPerConnection(t *testing.T) {
	needRoot(t)
	const group = "mfad-e2e-late"
	exec.Command("groupdel", group).Run()
	d := startDaemon(t, "", "admin_group = \""+group+"\"\n")
	run(t, "groupadd", "--system", group)
	t.Cleanup(func() { exec.Command("groupdel", group).Run() })
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	u := users[userOther]
	uid, _ := strconv.Atoi(u.Uid)
	ugid, _ := strconv.Atoi(u.Gid)
	plain := &syscall.Credential{Uid: uint32(uid), Gid: uint32(ugid)}
	holding := &syscall.Credential{Uid: uint32(uid), Gid: uint32(ugid), Groups: []uint32{uint32(gid)}}

	admin := func(cred *syscall.Credential) bool {
		t.Helper()
		a := callWithCred(t, cred, d.sock, "GET", api.PathAccounts)
		switch {
		case a.Status == 200:
			return true
		case a.Status == 403 && a.Code == api.CodePermissionDenied:
			return false
		}
		t.Fatalf("GET %s: %d %s", api.PathAccounts, a.Status, a.Code)
		return false
	}
	if admin(plain) || admin(holding) {
		t.Fatal("a user outside the admin group is an admin")
	}
	run(t, "usermod", "-a", "-G", group, userOther)
	t.Cleanup(func() { exec.Command("gpasswd", "-d", userOther, group).Run() })
	if !admin(plain) {
		t.Error("a user added to the admin group is not an admin on their next connection")
	}
	run(t, "gpasswd", "-d", userOther, group)
	if admin(plain) {
		t.Error("a user removed from the admin group is still an admin")
	}
	if admin(holding) {
		t.Error("a user removed from the admin group is still an admin from a process that carries the group")
	}
}
