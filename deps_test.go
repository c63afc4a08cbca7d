package mfad_test

import (
	"go/build"
	"os/exec"
	"strings"
	"testing"
)

// allowedImports is the dependency direction of DESIGN.md: for each
// package (prefix), the module packages and third-party modules its
// non-test code may import. The standard library is always allowed.
var allowedImports = map[string][]string{
	"daemon":            {"*"},
	"daemon/cmd/mfad":   {"daemon", "daemon/emulator"},
	"daemon/e2e":        {},
	"hw/ctaphid":        {},
	"hw/ctap2":          {"github.com/fxamacker/cbor/v2", "golang.org/x/crypto", "github.com/x448/float16"},
	"hw/hidraw":         {"golang.org/x/sys", "hw/ctaphid"},
	"hw/usbhid":         {"github.com/karalabe/hid", "hw/ctaphid", "hw/hidraw"},
	"hw/libfido2":       {"github.com/keys-pub/go-libfido2", "hw/ctap2", "hw/hidraw"},
	"hw/fidokey":        {"hw/ctap2", "hw/ctaphid", "hw/hidraw", "hw/usbhid"},
	"hw/emu":            {"hw/ctap2", "hw/ctaphid", "github.com/fxamacker/cbor/v2", "golang.org/x/crypto", "golang.org/x/sys", "hw/emu"},
	"authn":             {"authn/totp", "authn/fido2", "hw/ctap2"},
	"authn/totp":        {"github.com/pquerna/otp", "github.com/boombuler/barcode"},
	"authn/fido2":       {"hw/ctap2", "github.com/fxamacker/cbor/v2", "golang.org/x/crypto"},
	"authn/store":       {"authn", "go.etcd.io/bbolt", "github.com/fxamacker/cbor/v2"},
	"ipc/api":           {},
	"ipc/peercred":      {"golang.org/x/sys"},
	"ipc/server":        {"ipc/api", "ipc/peercred", "authn"},
	"ipc/client":        {"ipc/api"},
	"contrib/mfactl":    {"ipc/client", "ipc/api", "github.com/spf13/cobra", "github.com/spf13/pflag", "golang.org/x/term"},
	"contrib/vmtest":    {"*"}, // the VM test harness and its probe drive every layer
	"contrib/mfad-load": {"ipc/client", "ipc/api", "authn/totp"},
}

const module = "github.com/mfad/mfad/"

// TestDependencyDirection fails on an import that breaks DESIGN.md's
// package map, and on a package the map does not know.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(path, module)
		rule, ok := ruleFor(rel)
		if !ok {
			if rel == "github.com/mfad/mfad" {
				continue
			}
			t.Errorf("package %s is not in the dependency map (deps_test.go, DESIGN.md)", rel)
			continue
		}
		pkg, err := build.Import(path, ".", 0)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		for _, imp := range pkg.Imports {
			if isStdlib(imp) || permitted(rule, imp) {
				continue
			}
			t.Errorf("%s imports %s, which DESIGN.md's dependency direction forbids", rel, imp)
		}
	}
}

// ruleFor finds the most specific entry for a package.
func ruleFor(rel string) ([]string, bool) {
	best := ""
	for p := range allowedImports {
		if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > len(best) {
			best = p
		}
	}
	r, ok := allowedImports[best]
	return r, ok && best != ""
}

func permitted(rule []string, imp string) bool {
	for _, a := range rule {
		if a == "*" {
			return true
		}
		full := a
		if !strings.Contains(a, ".") {
			full = module + a
		}
		if imp == full || strings.HasPrefix(imp, full+"/") {
			return true
		}
	}
	return false
}

func isStdlib(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}
