package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// codeConsts returns the string values of the Code* constants in a file.
func codeConsts(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if strings.HasPrefix(name.Name, "Code") && i < len(vs.Values) {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					v, _ := strconv.Unquote(lit.Value)
					out[name.Name] = v
				}
			}
		}
		return true
	})
	return out
}

// TestErrorCodesMatchTheWireContract: every code authn can produce is in
// ipc/api, with the same name and value, so clients can match it.
func TestErrorCodesMatchTheWireContract(t *testing.T) {
	domain := codeConsts(t, filepath.Join("..", "..", "authn", "errors.go"))
	wire := codeConsts(t, filepath.Join("..", "api", "api.go"))
	if len(domain) < 10 {
		t.Fatalf("found only %d codes in authn", len(domain))
	}
	for name, v := range domain {
		if wire[name] != v {
			t.Errorf("authn.%s = %q but api.%s = %q", name, v, name, wire[name])
		}
	}
}
