package uhid

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports golang.org/x/sys, hw/ctaphid and the standard
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
		case imp == "github.com/mfad/mfad/hw/ctaphid", strings.HasPrefix(imp, "golang.org/x/sys/"):
		default:
			t.Errorf("forbidden import %q", imp)
		}
	}
}
