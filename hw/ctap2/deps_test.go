package ctap2

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports the CBOR library, golang.org/x/crypto and the
// standard library only (doc.go).
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		switch {
		case !strings.Contains(first, "."):
		case imp == "github.com/fxamacker/cbor/v2":
		case strings.HasPrefix(imp, "golang.org/x/crypto/"):
		default:
			t.Errorf("forbidden import %q", imp)
		}
	}
}
