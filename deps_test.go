package mfad_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// allowedImports is the dependency direction of DESIGN.md: for each
// package of the module (its path below the module, "." for the root),
// exactly the module packages and third-party packages its non-test code
// may import. The standard library is always allowed. Entries are exact:
// "authn" admits authn and nothing beneath it; every package, however
// deep, has its own entry.
var allowedImports = map[string][]string{
	".":                           {},
	"authn":                       {"authn/fido2", "authn/totp", "hw/ctap2"},
	"authn/fido2":                 {"github.com/fxamacker/cbor/v2", "hw/ctap2"},
	"authn/store":                 {"authn", "github.com/fxamacker/cbor/v2", "go.etcd.io/bbolt", "go.etcd.io/bbolt/errors", "golang.org/x/crypto/argon2"},
	"authn/store/postgres":        {"authn", "authn/store", "go.etcd.io/bbolt", "github.com/jackc/pgx/v5", "github.com/jackc/pgx/v5/pgconn", "github.com/jackc/pgx/v5/pgxpool"},
	"authn/store/postgres/pgtest": {},
	"authn/store/storetest":       {"authn"},
	"authn/totp":                  {"github.com/pquerna/otp", "github.com/pquerna/otp/totp"},
	"contrib/mfactl":              {"github.com/spf13/cobra", "golang.org/x/term", "ipc/api", "ipc/client"},
	"contrib/mfad-load":           {"authn", "authn/store", "authn/totp", "go.etcd.io/bbolt", "ipc/api", "ipc/client"},
	"contrib/vmtest":              {},
	"contrib/vmtest/probe":        {"daemon/emulator", "github.com/karalabe/hid", "hw/ctap2", "hw/fidokey", "hw/hidraw", "hw/libfido2", "hw/usbhid"},
	"daemon":                      {"authn", "authn/fido2", "authn/store", "authn/store/postgres", "daemon/notify", "github.com/BurntSushi/toml", "github.com/coreos/go-systemd/v22/activation", "github.com/coreos/go-systemd/v22/daemon", "github.com/coreos/go-systemd/v22/journal", "golang.org/x/term", "hw/ctap2", "hw/ctaphid", "hw/emu", "hw/fidocheck", "hw/fidokey", "hw/hidraw", "hw/libfido2", "hw/usbhid", "ipc/api", "ipc/server"},
	"daemon/cmd/mfad":             {"daemon", "daemon/emulator", "github.com/spf13/cobra"},
	"daemon/e2e":                  {},
	"daemon/emulator":             {"hw/ctaphid", "hw/emu", "hw/emu/gadget", "hw/emu/udp", "hw/emu/uhid"},
	"daemon/notify":               {},
	"daemon/notify/notifytest":    {},
	"hw/ctap2":                    {"github.com/fxamacker/cbor/v2"},
	"hw/ctaphid":                  {},
	"hw/emu":                      {"github.com/fxamacker/cbor/v2", "hw/ctap2", "hw/ctaphid"},
	"hw/emu/gadget":               {"golang.org/x/sys/unix", "hw/ctaphid"},
	"hw/emu/udp":                  {"hw/ctaphid"},
	"hw/emu/uhid":                 {"golang.org/x/sys/unix", "hw/ctaphid"},
	"hw/fidocheck":                {"github.com/fxamacker/cbor/v2", "hw/ctap2", "hw/ctaphid", "hw/fidokey"},
	"hw/fidokey":                  {"hw/ctap2", "hw/ctaphid"},
	"hw/hidraw":                   {"golang.org/x/sys/unix", "hw/ctaphid"},
	"hw/libfido2":                 {"github.com/keys-pub/go-libfido2", "hw/ctap2", "hw/hidraw"},
	"hw/usbhid":                   {"github.com/karalabe/hid", "hw/ctaphid", "hw/hidraw"},
	"ipc/api":                     {},
	"ipc/client":                  {"ipc/api"},
	"ipc/peercred":                {"golang.org/x/sys/unix"},
	"ipc/server":                  {"authn", "ipc/api", "ipc/peercred"},
}

const module = "github.com/mfad/mfad"

// TestDependencyDirection fails on an import that breaks DESIGN.md's
// package map, on a package the map does not know, and on an entry for a
// package that does not exist. It reads every non-test file, whatever its
// build constraints, so that code built only off Linux or without cgo is
// held to the same map.
func TestDependencyDirection(t *testing.T) {
	pkgs, err := moduleImports(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range sortedKeys(pkgs) {
		rule, ok := allowedImports[dir]
		if !ok {
			t.Errorf("package %s is not in the dependency map (deps_test.go, DESIGN.md): add its entry", dir)
			continue
		}
		for _, imp := range pkgs[dir] {
			if isStdlib(imp.path) || slices.Contains(rule, strings.TrimPrefix(imp.path, module+"/")) {
				continue
			}
			t.Errorf("%s (%s) imports %s, which DESIGN.md's dependency direction forbids", dir, imp.file, imp.path)
		}
	}
	for _, dir := range sortedKeys(allowedImports) {
		if _, ok := pkgs[dir]; !ok {
			t.Errorf("the dependency map lists %s, which has no non-test Go file: remove the entry", dir)
		}
	}
}

// TestImportsReadWhateverTheBuildTags: a file that the current build would
// leave out (another OS, no cgo, a tag nobody sets) is read all the same,
// and a test file is not.
func TestImportsReadWhateverTheBuildTags(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.go":       "package a\n\nimport \"fmt\"\n",
		"a_other.go": "//go:build !linux\n\npackage a\n\nimport \"example.com/other\"\n",
		"a_nocgo.go": "//go:build !cgo && never\n\npackage a\n\nimport _ \"example.com/nocgo\"\n",
		"a_test.go":  "package a\n\nimport \"example.com/test\"\n",
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub", "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, "sub", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "testdata", "x.go"), []byte("package x\n\nimport \"example.com/data\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := moduleImports(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, imp := range pkgs["sub"] {
		got = append(got, imp.path)
	}
	slices.Sort(got)
	want := []string{"example.com/nocgo", "example.com/other", "fmt"}
	if !slices.Equal(got, want) || len(pkgs) != 1 {
		t.Errorf("imports %v of %d packages, want %v of 1", got, len(pkgs), want)
	}
}

type importSite struct{ path, file string }

// moduleImports parses every non-test .go file under root (skipping
// testdata and hidden directories) and returns each package directory's
// imports, keyed by the directory relative to root ("." for root).
func moduleImports(root string) (map[string][]importSite, error) {
	out := map[string][]importSite{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if _, ok := out[rel]; !ok {
			out[rel] = nil
		}
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			out[rel] = append(out[rel], importSite{path: path, file: name})
		}
		return nil
	})
	return out, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isStdlib(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".") && imp != "C"
}
