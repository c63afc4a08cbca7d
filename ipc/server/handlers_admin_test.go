package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/ipc/api"
)

type fakeMasterKey struct {
	rotated int
	pass    string
	fail    error
}

func (f *fakeMasterKey) RotateKey() (api.KeyRotation, error) {
	if f.fail != nil {
		return api.KeyRotation{}, f.fail
	}
	f.rotated++
	return api.KeyRotation{KeyFile: "/s/mfad.key", OldKeyFile: "/s/mfad.key.old", Resealed: 3}, nil
}

func (f *fakeMasterKey) WriteKeyedBackup(w io.Writer, passphrase []byte) (int64, error) {
	f.pass = string(passphrase)
	n, err := w.Write([]byte("keyed backup"))
	return int64(n), err
}

// TestMasterKeyRoutes: rotation and keyed backups answer what the backend
// did and are audited; a short passphrase never reaches the backend; a
// store without a key file says so.
func TestMasterKeyRoutes(t *testing.T) {
	st, err := store.Open(t.TempDir(), bytes.Repeat([]byte{6}, store.KeySize), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := authn.NewService(st, authn.Config{})
	mk := &fakeMasterKey{}
	root := Principal{UID: 0, Name: "root", Admin: true}
	call := func(s *Server, method, path, body string) (int, api.Problem, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", api.ContentJSON)
		w := httptest.NewRecorder()
		s.mux.ServeHTTP(w, withPrincipalForTest(r, root))
		var p api.Problem
		json.Unmarshal(w.Body.Bytes(), &p)
		return w.Code, p, w.Body.String()
	}
	s := New(Config{}, Backends{Accounts: svc, Devices: svc, Tokens: svc, Backup: st, MasterKey: mk})
	if code, _, body := call(s, "POST", api.PathRotateKey, ""); code != 200 || mk.rotated != 1 || !strings.Contains(body, `"resealed":3`) {
		t.Errorf("rotate: %d %s", code, body)
	}
	if code, p, _ := call(s, "POST", api.PathBackup, `{"passphrase":"short"}`); code != 400 || p.Code != api.CodeInvalidRequest || mk.pass != "" {
		t.Errorf("short passphrase: %d %+v, backend saw %q", code, p, mk.pass)
	}
	if code, _, body := call(s, "POST", api.PathBackup, `{"passphrase":"a long passphrase"}`); code != 200 || body != "keyed backup" || mk.pass != "a long passphrase" {
		t.Errorf("keyed backup: %d %q", code, body)
	}
	mk.fail = store.NotRotatable("/run/credentials/mfad.service/mfad.key")
	if code, p, _ := call(s, "POST", api.PathRotateKey, ""); code != 409 || p.Code != api.CodeKeyNotRotatable || !strings.Contains(p.Detail, "systemd credential") {
		t.Errorf("credential key: %d %+v", code, p)
	}
	mk.fail = errors.New("disk full")
	if code, _, _ := call(s, "POST", api.PathRotateKey, ""); code != 500 {
		t.Errorf("failed rotation: %d", code)
	}
	var actions []string
	st.View(func(tx authn.Tx) error {
		ev, _ := tx.Audit(0, 100)
		for _, e := range ev {
			actions = append(actions, e.Action+":"+e.Outcome)
		}
		return nil
	})
	if got := strings.Join(actions, " "); got != "store.rotate_key:ok store.backup:ok store.rotate_key:fail store.rotate_key:fail" {
		t.Errorf("audit: %s", got)
	}
	// A store without a key file (PostgreSQL) has no master key routes.
	s = New(Config{}, Backends{Accounts: svc, Devices: svc, Tokens: svc, Backup: st})
	if code, p, _ := call(s, "POST", api.PathRotateKey, ""); code != 409 || p.Code != api.CodeKeyNotRotatable {
		t.Errorf("no master key backend: %d %+v", code, p)
	}
}
