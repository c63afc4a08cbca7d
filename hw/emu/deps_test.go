package emu

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports hw/ctap2, hw/ctaphid, the CBOR library,
// golang.org/x/crypto and the standard library only (doc.go).
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		switch {
		case !strings.Contains(first, "."):
		case imp == "github.com/mfad/mfad/hw/ctap2", imp == "github.com/mfad/mfad/hw/ctaphid":
		case imp == "github.com/fxamacker/cbor/v2", strings.HasPrefix(imp, "golang.org/x/crypto/"):
		default:
			t.Errorf("forbidden import %q", imp)
		}
	}
}
