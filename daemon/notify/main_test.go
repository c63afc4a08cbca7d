package notify_test

import (
	"encoding/json"
	"os"
	"testing"
)

// dumpAccount, given as MFAD_ACCOUNT to the test binary run as a phone
// command, makes it write what it was started with to the file named by
// MFAD_PHONE and exit, instead of running tests.
const dumpAccount = "notify-dump-environment"

// started is what the test binary saw when run as a phone command.
type started struct {
	Args        []string
	Env         []string
	StdinIsNull bool
	Dir         string
}

func TestMain(m *testing.M) {
	if os.Getenv("MFAD_ACCOUNT") == dumpAccount {
		os.Exit(dumpStart(os.Getenv("MFAD_PHONE")))
	}
	os.Exit(m.Run())
}

func dumpStart(path string) int {
	var s started
	s.Args = os.Args
	s.Env = os.Environ()
	s.Dir, _ = os.Getwd()
	in, err1 := os.Stdin.Stat()
	null, err2 := os.Stat(os.DevNull)
	s.StdinIsNull = err1 == nil && err2 == nil && os.SameFile(in, null)
	b, _ := json.Marshal(s)
	if os.WriteFile(path, b, 0o600) != nil {
		return 1
	}
	return 0
}
