package fido2

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps doc.go true: the package's non-test files import only
// hw/ctap2, github.com/fxamacker/cbor/v2, golang.org/x/crypto and the
// standard library.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(path string) bool {
		switch {
		case !strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
			return true // standard library
		case path == "github.com/mfad/mfad/hw/ctap2",
			path == "github.com/fxamacker/cbor/v2",
			path == "golang.org/x/crypto", strings.HasPrefix(path, "golang.org/x/crypto/"):
			return true
		}
		return false
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed(path) {
				t.Errorf("%s imports %s: only hw/ctap2, cbor, x/crypto and the standard library are allowed", name, path)
			}
		}
	}
}
