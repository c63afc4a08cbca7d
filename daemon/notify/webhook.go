package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxWebhookResponse bounds how much of a webhook's answer is read (and
// thrown away, so the connection can be reused).
const maxWebhookResponse = 64 << 10

// Webhook delivers codes by POSTing them to an HTTP endpoint (an SMS
// provider, a chat bridge) as JSON:
//
//	{"phone": "+15551234567", "account": "alice", "code": "123456"}
//
// with Content-Type application/json. Any 2xx answer means delivered; its
// body is read (bounded) and ignored, and no answer's body is ever echoed
// into an error. The URL must be https unless its host is loopback;
// redirects are not followed (a redirect could carry the code elsewhere).
type Webhook struct {
	// URL is the endpoint. Errors name its scheme, host and path only:
	// a query may hold a token.
	URL string
	// Timeout bounds one request; DefaultWebhookTimeout when zero.
	Timeout time.Duration
	// Client sends the request; http.DefaultClient's settings when nil.
	// It is copied, and the copy never follows redirects.
	Client *http.Client
}

// SendCode posts one code.
func (w Webhook) SendCode(ctx context.Context, phone, account, code string) error {
	u, err := checkWebhookURL(w.URL)
	if err != nil {
		return err
	}
	if err := checkCode(phone, account, code); err != nil {
		return err
	}
	body, err := json.Marshal(struct {
		Phone   string `json:"phone"`
		Account string `json:"account"`
		Code    string `json:"code"`
	}{phone, account, code})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutOr(w.Timeout, DefaultWebhookTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: webhook: %v", ErrInvalid, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mfad")

	var client http.Client
	if w.Client != nil {
		client = *w.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	where := "webhook " + safeURL(u)
	resp, err := client.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		} else if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // its text repeats the whole URL
		}
		return codeRedactor(code).Error(fmt.Errorf("%w: %s: %w", ErrDelivery, where, err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponse))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s answered %d %s", ErrDelivery, where, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

// checkWebhookURL parses a webhook URL and refuses plain http to a host
// that is not loopback.
func checkWebhookURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: webhook URL does not parse", ErrInvalid)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: webhook URL %s has no host", ErrInvalid, safeURL(u))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: webhook URL %s: plain http only to a loopback host; use https", ErrInvalid, safeURL(u))
		}
	default:
		return nil, fmt.Errorf("%w: webhook URL %s: scheme must be https", ErrInvalid, safeURL(u))
	}
	return u, nil
}

// safeURL is scheme://host/path: no user info, query or fragment.
func safeURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
