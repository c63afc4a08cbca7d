package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// Sendmail sends mail by piping it to a sendmail-compatible command
// (Postfix's, Exim's, msmtp, nullmailer): "Path -i -f FROM -- TO", the
// message on stdin with LF line ends. The command is executed directly,
// never through a shell, with only PATH in its environment.
type Sendmail struct {
	// Path is the command's absolute path; DefaultSendmail when empty.
	Path string
	// From is the sender, as for SMTP.
	From string
	// Timeout bounds the command; DefaultTimeout when zero. The command is
	// killed when it runs out.
	Timeout time.Duration
}

// SendMail delivers one plain-text message to one recipient.
func (s Sendmail) SendMail(ctx context.Context, to, subject, body string) error {
	env, err := checkEnvelope(s.From, to, subject)
	if err != nil {
		return err
	}
	msg, err := buildMessage(env, subject, body, time.Now())
	if err != nil {
		return err
	}
	path := s.Path
	if path == "" {
		path = DefaultSendmail
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: sendmail path %q is not absolute", ErrInvalid, path)
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutOr(s.Timeout, DefaultTimeout))
	defer cancel()

	// -i: a line with a single '.' does not end the message.
	cmd := exec.CommandContext(ctx, path, "-i", "-f", env.from.Address, "--", env.to.Address)
	cmd.Env = []string{commandPATH}
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")))
	out := &boundedBuffer{max: maxOutput}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = time.Second
	return bodyRedactor(subject, body).Error(runErr(ctx, "sendmail "+path, cmd.Run(), out))
}

// runErr describes how a command failed: its exit status (or the reason
// it did not run), with its bounded output, or the context's error when
// the deadline or a cancellation killed it. The caller redacts secrets.
func runErr(ctx context.Context, what string, err error, out *boundedBuffer) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %s: %w", ErrDelivery, what, cerr)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		err = errors.New(exit.ProcessState.String())
	}
	if s := out.String(); s != "" {
		return fmt.Errorf("%w: %s: %w: %s", ErrDelivery, what, err, s)
	}
	return fmt.Errorf("%w: %s: %w", ErrDelivery, what, err)
}
