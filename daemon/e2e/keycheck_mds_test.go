package e2e

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// The MDS3 fixtures (testdata/mds/gen.go writes them): blob.jwt describes
// the software key's AAGUID and is signed under root.pem.
func mdsFixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "mds", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mdsConfig(blob, root string) string {
	return fmt.Sprintf("[fido]\nmds = %q\nmds_root = %q\n", blob, root)
}

// TestKeyCheckMDSDescription: with an offline MDS3 blob configured, the
// battery's report names the key's model by its AAGUID's metadata
// description, in the JSON report and among the JUnit suite's properties;
// without one it names none.
func TestKeyCheckMDSDescription(t *testing.T) {
	const want = "mfad software key (test metadata)"
	d := startWithEmulators(t, mdsConfig(mdsFixture(t, "blob.jwt"), mdsFixture(t, "root.pem")))
	c := d.client()
	if _, err := c.AddEmulator(t.Context(), api.AddEmulator{Name: "mds"}); err != nil {
		t.Fatal(err)
	}
	check := []string{"key", "check", "emu-mds", "--only", "getinfo.fields,ctaphid.ping"}
	out, errs, code := mfactl(t, d.sock, append(check, "--report", "json")...)
	if code != 0 {
		t.Fatalf("key check: exit %d\n%s", code, errs)
	}
	var file struct {
		Reports []api.KeyCheckReport `json:"reports"`
	}
	if err := json.Unmarshal([]byte(out), &file); err != nil || len(file.Reports) != 1 {
		t.Fatalf("json report (%v): %s", err, out)
	}
	if k := file.Reports[0].Key; k.AAGUID != "6d666164-2d65-6d75-2d73-6f66746b6579" || k.AAGUIDDescription != want {
		t.Errorf("json report key: aaguid %s, description %q, want %q", k.AAGUID, k.AAGUIDDescription, want)
	}
	if !strings.Contains(out, `"aaguid_description": "`+want+`"`) && !strings.Contains(out, `"aaguid_description":"`+want+`"`) {
		t.Errorf("no aaguid_description member in the JSON report:\n%s", out)
	}

	report := filepath.Join(t.TempDir(), "keys.xml")
	if _, errs, code := mfactl(t, d.sock, append(check, "--report", "junit", "--output", report)...); code != 0 {
		t.Fatalf("key check --report junit: exit %d\n%s", code, errs)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var ju junitFile
	if err := xml.Unmarshal(raw, &ju); err != nil || len(ju.Suites) != 1 {
		t.Fatalf("junit (%v):\n%s", err, raw)
	}
	props := map[string]string{}
	for _, p := range ju.Suites[0].Properties {
		props[p.Name] = p.Value
	}
	if props["aaguid_description"] != want {
		t.Errorf("junit properties %v: aaguid_description %q, want %q", props, props["aaguid_description"], want)
	}

	// Without a blob, no description.
	plain := startWithEmulators(t, "")
	if _, err := plain.client().AddEmulator(t.Context(), api.AddEmulator{Name: "mds"}); err != nil {
		t.Fatal(err)
	}
	out, errs, code = mfactl(t, plain.sock, append(check, "--report", "json")...)
	if code != 0 || strings.Contains(out, "aaguid_description") {
		t.Fatalf("without a blob: exit %d, report %s\n%s", code, out, errs)
	}
}

// TestMDSBlobRefused: a blob that is not a JWT, is cut short, carries a
// forged signature, is signed under another root, or whose signed payload
// is garbled stops mfad at start with an error naming fido.mds (never a
// panic, never a daemon running without the metadata it was told to use).
func TestMDSBlobRefused(t *testing.T) {
	good, err := os.ReadFile(mdsFixture(t, "blob.jwt"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(work, "mds-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	parts := strings.Split(strings.TrimSpace(string(good)), ".")
	sig := []byte(parts[2])
	sig[10] ^= 'A' ^ 'B' // another base64 letter: a signature that does not verify
	if sig[10] == parts[2][10] {
		t.Fatal("signature unchanged")
	}
	root := mdsFixture(t, "root.pem")
	for _, tc := range []struct {
		name, blob, root, want string
	}{
		{"empty", write("empty.jwt", nil), root, "fido.mds: fido2: malformed: MDS: not a JWT"},
		{"binary", write("binary.jwt", []byte{0xff, 0x00, 0x2e, 0x2e, 0x80}), root, "fido.mds: fido2: malformed"},
		{"cut short", write("short.jwt", good[:len(good)/2]), root, "fido.mds: fido2: malformed"},
		{"forged signature", write("forged.jwt", []byte(parts[0]+"."+parts[1]+"."+string(sig))), root, "fido.mds: fido2: bad_signature"},
		{"another root", mdsFixture(t, "blob.jwt"), mdsFixture(t, "other-root.pem"), "fido.mds: fido2: untrusted_metadata"},
		{"garbled entry", mdsFixture(t, "bad-entry.jwt"), root, `fido.mds: fido2: malformed: AAGUID "not-an-aaguid"`},
		{"payload not JSON", mdsFixture(t, "not-json.jwt"), root, "fido.mds: fido2: malformed: MDS: payload"},
		{"root not PEM", mdsFixture(t, "blob.jwt"), mdsFixture(t, "blob.jwt"), "fido.mds_root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := write(strings.ReplaceAll(tc.name, " ", "-")+".toml", []byte(mdsConfig(tc.blob, tc.root)))
			state := filepath.Join(dir, "state-"+strings.ReplaceAll(tc.name, " ", "-"))
			msg := mfadRefusesWith(t, "--config", cfg, "--socket", filepath.Join(dir, "x.sock"), "--state-dir", state)
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
				t.Errorf("mfad's refusal does not say %q (or panicked):\n%s", tc.want, msg)
			}
		})
	}
}
