package notify_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestStdlibOnly keeps doc.go's promise: notify and notifytest import
// only the standard library.
func TestStdlibOnly(t *testing.T) {
	for _, dir := range []string{".", "notifytest"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s, outside the standard library", pkg.ImportPath, imp)
			}
		}
	}
}
