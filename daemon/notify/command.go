package notify

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// Command delivers codes by running a local program, which carries them
// on (an SMS gateway's client, a modem script). The program gets no
// arguments, stdin from /dev/null, and an environment of exactly:
//
//	MFAD_PHONE    the phone number
//	MFAD_CODE     the code
//	MFAD_ACCOUNT  the account name
//	PATH=/usr/sbin:/usr/bin:/sbin:/bin
//
// nothing inherited from mfad. It is executed directly, never through a
// shell. Exit status 0 means delivered; anything else is an error that
// gives the status and the start of the output, with the code redacted.
type Command struct {
	// Path is the program's absolute path.
	Path string
	// Timeout bounds a run; DefaultTimeout when zero. The program is
	// killed when it runs out.
	Timeout time.Duration
}

// SendCode runs the program once for one code.
func (c Command) SendCode(ctx context.Context, phone, account, code string) error {
	if !filepath.IsAbs(c.Path) {
		return fmt.Errorf("%w: phone command %q is not an absolute path", ErrInvalid, c.Path)
	}
	if err := checkCode(phone, account, code); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutOr(c.Timeout, DefaultTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path)
	cmd.Env = []string{
		"MFAD_PHONE=" + phone,
		"MFAD_CODE=" + code,
		"MFAD_ACCOUNT=" + account,
		commandPATH,
	}
	cmd.Dir = "/"
	// Stdin nil: os/exec connects /dev/null.
	out := &boundedBuffer{max: maxOutput}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = time.Second
	return codeRedactor(code).Error(runErr(ctx, "phone command "+c.Path, cmd.Run(), out))
}

// checkCode validates what a Phone is given. Errors name the field, never
// its value (the code is a secret).
func checkCode(phone, account, code string) error {
	for _, f := range []struct{ name, v string }{{"phone number", phone}, {"account", account}, {"code", code}} {
		if f.v == "" {
			return fmt.Errorf("%w: empty %s", ErrInvalid, f.name)
		}
		for _, r := range f.v {
			if r < ' ' || r == 0x7f {
				return fmt.Errorf("%w: %s contains a control character", ErrInvalid, f.name)
			}
		}
	}
	return nil
}
