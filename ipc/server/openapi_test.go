package server

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openAPIOperations reads method, path and x-permission of every operation
// in ipc/openapi.yaml (its paths section is written two spaces per level).
func openAPIOperations(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops := map[string]string{}
	inPaths := false
	path, op := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			m := strings.TrimSuffix(strings.TrimSpace(line), ":")
			switch m {
			case "get", "post", "patch", "put", "delete":
				op = strings.ToUpper(m) + " " + path
				ops[op] = ""
			default:
				op = ""
			}
		case inPaths && op != "" && strings.HasPrefix(strings.TrimSpace(line), "x-permission:"):
			ops[op] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "x-permission:"))
		}
	}
	return ops
}

// TestOpenAPIMatchesRouteTable keeps ipc/openapi.yaml in step with the
// route table: same operations, same permissions.
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	ops := openAPIOperations(t)
	if len(ops) == 0 {
		t.Fatal("no operations found in openapi.yaml")
	}
	for _, r := range Table() {
		k := r.Method + " " + r.Pattern
		perm, ok := ops[k]
		if !ok {
			t.Errorf("route %s is missing from ipc/openapi.yaml", k)
			continue
		}
		if perm != r.Perm.String() {
			t.Errorf("openapi.yaml gives %s x-permission %q, the route table %q", k, perm, r.Perm)
		}
		delete(ops, k)
	}
	for k := range ops {
		t.Errorf("openapi.yaml describes %s, which the server does not have", k)
	}
}
