package e2e

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/ipc/api"
)

// TestImportPamU2F: a credential of a (software) security key, written as
// pamu2fcfg writes it, in the current and the old format, is imported into
// an account and signs in at once with the same key, through mfactl and
// pam_mfad; a credential made for another origin is refused.
func TestImportPamU2F(t *testing.T) {
	needRoot(t)
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "u2f-key"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAccount(ctx, api.CreateAccount{Name: userSelf}); err != nil {
		t.Fatal(err)
	}
	// The key makes a credential for mfad's relying party (pam://HOSTNAME,
	// pam-u2f's default origin too); its id and public key are what
	// pamu2fcfg would have written.
	if out, errs, code := mfactl(t, d.sock, "device", "add", "fido", userSelf, "--label", "orig"); code != 0 {
		t.Fatalf("enroll: %d %s %s", code, out, errs)
	}
	list, err := c.Devices(ctx, userSelf)
	if err != nil || len(list.Devices) != 1 {
		t.Fatalf("devices: %+v %v", list, err)
	}
	orig, err := c.Device(ctx, userSelf, list.Devices[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	attObj, err := base64.RawURLEncoding.DecodeString(orig.FIDO.AttestationObject)
	if err != nil {
		t.Fatal(err)
	}
	var att struct {
		AuthData []byte `cbor:"authData"`
	}
	if err := ctap2.Unmarshal(attObj, &att); err != nil {
		t.Fatal(err)
	}
	ad, err := ctap2.ParseAuthData(att.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ad.AttestedCredential.Key()
	if err != nil {
		t.Fatal(err)
	}
	point, err := pub.(*ecdsa.PublicKey).Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	credID := orig.FIDO.CredentialID
	remove := func() {
		t.Helper()
		list, _ := c.Devices(ctx, userSelf)
		for _, dv := range list.Devices {
			c.DeactivateDevice(ctx, userSelf, dv.ID)
			if err := c.DeleteDevice(ctx, userSelf, dv.ID, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	remove()

	dir := t.TempDir()
	current := filepath.Join(dir, "u2f_keys")
	os.WriteFile(current, []byte(userSelf+":"+base64.StdEncoding.EncodeToString(credID)+","+
		base64.StdEncoding.EncodeToString(point[1:])+",es256,+presence\n"), 0o600)
	old := filepath.Join(dir, "u2f_mappings")
	os.WriteFile(old, []byte("# pam-u2f 1.0\n"+userSelf+":"+base64.RawURLEncoding.EncodeToString(credID)+","+hex.EncodeToString(point)+"\n"), 0o600)
	svc := ""
	if _, err := os.Stat("/usr/bin/pamtester"); err == nil {
		svc = pamService(t, "u2f", "auth required MODULE socket="+d.sock)
	}

	for _, file := range []string{current, old} {
		out, errs, code := mfactl(t, d.sock, "import", "pam-u2f", file)
		if code != 0 || !strings.Contains(out, userSelf+": would import a fido device") {
			t.Fatalf("%s dry run: %d\n%s%s", file, code, out, errs)
		}
		if l, _ := c.Devices(ctx, userSelf); len(l.Devices) != 0 {
			t.Fatalf("a dry run wrote %d devices", len(l.Devices))
		}
		if out, errs, code = mfactl(t, d.sock, "import", "pam-u2f", file, "--apply"); code != 0 || !strings.Contains(out, "imported as fido device") {
			t.Fatalf("%s apply: %d\n%s%s", file, code, out, errs)
		}
		if _, errs, code = mfactl(t, d.sock, "import", "pam-u2f", file, "--apply"); code != 1 || !strings.Contains(errs+out, "refused") {
			t.Errorf("%s twice: %d %s", file, code, errs)
		}
		out, errs, code = mfactl(t, d.sock, "--json", "authenticate", "--key", userSelf)
		if code != 0 {
			t.Fatalf("%s: sign-in with the imported credential: %d %s %s", file, code, out, errs)
		}
		l, _ := c.Devices(ctx, userSelf)
		if len(l.Devices) != 1 || l.Devices[0].FIDO == nil || !strings.Contains(l.Devices[0].FIDO.Verdict, "imported from pam-u2f") || !strings.Contains(out, l.Devices[0].ID) {
			t.Errorf("%s: devices %+v, sign-in %s", file, l.Devices, out)
		}
		if svc != "" {
			if out, code := pamtester(t, svc, userSelf, "\n", "authenticate"); code != 0 {
				t.Errorf("%s: pam_mfad with the imported credential: exit %d\n%s", file, code, out)
			}
		}
		remove()
	}

	// A credential made for another origin could never sign in: refused.
	out, errs, code := mfactl(t, d.sock, "import", "pam-u2f", current, "--origin", "pam://elsewhere", "--apply")
	if code != 1 || !strings.Contains(out, "could never sign in") {
		t.Errorf("another origin: %d\n%s%s", code, out, errs)
	}
}
