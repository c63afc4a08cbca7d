package notifytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// PhoneMessage is one code a PhoneScript was run for.
type PhoneMessage struct {
	Phone, Account, Code string
}

// PhoneScript writes an executable shell script to dir for use as the
// phone command (notify.Command, [recovery.phone] command = ...): each run
// appends "MFAD_PHONE MFAD_ACCOUNT MFAD_CODE" as a line to a file next to
// it. It returns the script's absolute path and a function reading the
// codes delivered so far.
func PhoneScript(t testing.TB, dir string) (path string, read func() []PhoneMessage) {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("notifytest: %v", err)
	}
	path = filepath.Join(dir, "mfad-phone")
	log := filepath.Join(dir, "mfad-phone.log")
	script := "#!/bin/sh\n" +
		"printf '%s\\t%s\\t%s\\n' \"$MFAD_PHONE\" \"$MFAD_ACCOUNT\" \"$MFAD_CODE\" >> " + shellQuote(log) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatalf("notifytest: %v", err)
	}
	read = func() []PhoneMessage {
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Errorf("notifytest: %v", err)
			return nil
		}
		var msgs []PhoneMessage
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			// Tab-separated: phone numbers may hold spaces.
			f := strings.Split(line, "\t")
			if len(f) != 3 {
				t.Errorf("notifytest: phone log line %q: want 3 fields", line)
				continue
			}
			msgs = append(msgs, PhoneMessage{Phone: f[0], Account: f[1], Code: f[2]})
		}
		return msgs
	}
	return path, read
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
