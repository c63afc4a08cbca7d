package fidokey

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports hw/ctap2, hw/ctaphid and the standard library only
// (doc.go); never the emulator, which tests alone use.
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
		default:
			t.Errorf("forbidden import %q", imp)
		}
	}
}
