package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// parseProblem reads a raw HTTP answer and decodes its problem body.
func parseProblem(t *testing.T, raw string) (int, api.Problem, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("unreadable answer %q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p api.Problem
	json.Unmarshal(b, &p)
	return resp.StatusCode, p, resp.Header.Get("Content-Type")
}

func credOf(uid, gid uint32) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
}
