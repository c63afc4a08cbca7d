package usbhid

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports github.com/karalabe/hid, hw/ctaphid, hw/hidraw and the standard
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
		case imp == "github.com/mfad/mfad/hw/ctaphid", imp == "github.com/mfad/mfad/hw/hidraw", imp == "github.com/karalabe/hid":
		default:
			t.Errorf("forbidden import %q", imp)
		}
	}
}
