package libfido2

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports github.com/keys-pub/go-libfido2, hw/ctap2, hw/hidraw and the standard
// library only (doc.go).
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		switch {
		case !strings.Contains(first, "."):
		case imp == "github.com/mfad/mfad/hw/ctap2", imp == "github.com/mfad/mfad/hw/hidraw", imp == "github.com/keys-pub/go-libfido2":
		default:
			t.Errorf("forbidden import %q", imp)
		}
	}
}
