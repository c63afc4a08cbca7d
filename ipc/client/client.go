package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// DefaultSocket is where mfad listens under systemd.
const DefaultSocket = "/run/mfad/mfad.sock"

// SocketFromEnv returns $MFAD_SOCKET, or DefaultSocket.
func SocketFromEnv() string {
	if s := os.Getenv("MFAD_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Client calls mfad over its Unix socket.
type Client struct {
	// Socket is the socket path (default DefaultSocket).
	Socket string
	// Dial replaces the socket dialer (a test seam).
	Dial func(ctx context.Context) (net.Conn, error)
	// Bearer is sent as "Authorization: Bearer" (a step-up token).
	Bearer string

	once sync.Once
	hc   *http.Client
}

// ErrNotRunning means nothing answers on the socket.
type ErrNotRunning struct {
	Socket string
	Err    error
}

func (e *ErrNotRunning) Error() string {
	return fmt.Sprintf("mfad is not running at %s (%v); start it with `systemctl start mfad.socket`, or `make run` in a source tree, or point --socket / $MFAD_SOCKET at it", e.Socket, e.Err)
}

func (e *ErrNotRunning) Unwrap() error { return e.Err }

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) http() *http.Client {
	c.once.Do(func() {
		dial := c.Dial
		if dial == nil {
			dial = func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", c.socket())
			}
		}
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		}}
	})
	return c.hc
}

// Do sends one request and decodes a JSON answer into out (when non-nil).
// It is exported for routes that need headers of their own.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, hdr http.Header) error {
	resp, err := c.send(ctx, method, path, in, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: decoding %s %s answer: %w", method, path, err)
	}
	return nil
}

// send performs a request and returns a 2xx response (body open) or an error.
func (c *Client) send(ctx context.Context, method, path string, in any, hdr http.Header) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mfad"+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", api.ContentJSON)
	}
	if c.Bearer != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &ErrNotRunning{Socket: c.socket(), Err: err}
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("cannot connect to %s: permission denied on the socket or its directory (%w)", c.socket(), syscall.EACCES)
		}
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeProblem(resp)
}

func decodeProblem(resp *http.Response) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if mt == api.ContentProblem {
		var p api.Problem
		if err := json.Unmarshal(b, &p); err == nil && p.Code != "" {
			return &p
		}
	}
	return &api.Problem{Status: resp.StatusCode, Code: api.CodeInternal,
		Detail: fmt.Sprintf("unexpected answer %s: %s", resp.Status, strings.TrimSpace(string(b)))}
}

// Info calls GET /v1/info.
func (c *Client) Info(ctx context.Context) (*api.Info, error) {
	var out api.Info
	return &out, c.Do(ctx, "GET", api.PathInfo, nil, &out, nil)
}

// Accounts calls GET /v1/accounts.
func (c *Client) Accounts(ctx context.Context) ([]api.Account, error) {
	var out api.AccountList
	err := c.Do(ctx, "GET", api.PathAccounts, nil, &out, nil)
	return out.Accounts, err
}

// CreateAccount calls POST /v1/accounts.
func (c *Client) CreateAccount(ctx context.Context, req api.CreateAccount) (*api.Account, error) {
	var out api.Account
	return &out, c.Do(ctx, "POST", api.PathAccounts, req, &out, nil)
}

// Account calls GET /v1/accounts/{name}.
func (c *Client) Account(ctx context.Context, name string) (*api.Account, error) {
	var out api.Account
	return &out, c.Do(ctx, "GET", accountPath(name), nil, &out, nil)
}

// PatchAccount calls PATCH /v1/accounts/{name}.
func (c *Client) PatchAccount(ctx context.Context, name string, req api.PatchAccount) (*api.Account, error) {
	var out api.Account
	return &out, c.Do(ctx, "PATCH", accountPath(name), req, &out, nil)
}

// DeleteAccount calls DELETE /v1/accounts/{name}.
func (c *Client) DeleteAccount(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", accountPath(name), nil, nil, nil)
}

// Audit calls GET /v1/audit?after=&limit=.
func (c *Client) Audit(ctx context.Context, after uint64, limit int) (*api.AuditPage, error) {
	var out api.AuditPage
	q := url.Values{"after": {fmt.Sprint(after)}, "limit": {fmt.Sprint(limit)}}
	return &out, c.Do(ctx, "GET", api.PathAudit+"?"+q.Encode(), nil, &out, nil)
}

// Backup calls GET /v1/admin/backup and copies the database to w.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, "GET", api.PathBackup, nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// KeyedBackup calls POST /v1/admin/backup and copies a backup that
// carries the master key, sealed under passphrase, to w.
func (c *Client) KeyedBackup(ctx context.Context, passphrase string, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, "POST", api.PathBackup, api.KeyedBackup{Passphrase: passphrase}, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// RotateKey calls POST /v1/admin/rotate-key.
func (c *Client) RotateKey(ctx context.Context) (*api.KeyRotation, error) {
	var out api.KeyRotation
	return &out, c.Do(ctx, "POST", api.PathRotateKey, nil, &out, nil)
}

func accountPath(name string) string {
	return strings.Replace(api.PathAccount, "{name}", url.PathEscape(name), 1)
}

func devicePath(pattern, account, id string) string {
	return strings.NewReplacer("{name}", url.PathEscape(account), "{id}", url.PathEscape(id)).Replace(pattern)
}

// Devices calls GET /v1/accounts/{name}/devices.
func (c *Client) Devices(ctx context.Context, account string) (*api.DeviceList, error) {
	var out api.DeviceList
	return &out, c.Do(ctx, "GET", devicePath(api.PathDevices, account, ""), nil, &out, nil)
}

// Device calls GET /v1/accounts/{name}/devices/{id}.
func (c *Client) Device(ctx context.Context, account, id string) (*api.Device, error) {
	var out api.Device
	return &out, c.Do(ctx, "GET", devicePath(api.PathDevice, account, id), nil, &out, nil)
}

// AddDevice calls POST /v1/accounts/{name}/devices.
func (c *Client) AddDevice(ctx context.Context, account string, req api.CreateDevice) (*api.Enrollment, error) {
	var out api.Enrollment
	return &out, c.Do(ctx, "POST", devicePath(api.PathDevices, account, ""), req, &out, nil)
}

// ActivateDevice calls POST /v1/accounts/{name}/devices/{id}/activate.
// ImportDevice brings over a device the account's user already has
// (admin); with DryRun it answers the device it would add, writing nothing.
func (c *Client) ImportDevice(ctx context.Context, account string, req api.ImportDevice) (*api.Device, error) {
	var out api.Device
	return &out, c.Do(ctx, "POST", devicePath(api.PathDeviceImport, account, ""), req, &out, nil)
}

func (c *Client) ActivateDevice(ctx context.Context, account, id string, codes api.CodePair) (*api.Device, error) {
	var out api.Device
	return &out, c.Do(ctx, "POST", devicePath(api.PathDeviceActivate, account, id), codes, &out, nil)
}

// ResyncDevice calls POST /v1/accounts/{name}/devices/{id}/resync.
func (c *Client) ResyncDevice(ctx context.Context, account, id string, codes api.CodePair) (*api.Device, error) {
	var out api.Device
	return &out, c.Do(ctx, "POST", devicePath(api.PathDeviceResync, account, id), codes, &out, nil)
}

// Authenticate calls POST /v1/authenticate.
func (c *Client) Authenticate(ctx context.Context, req api.Authenticate) (*api.AuthResult, error) {
	var out api.AuthResult
	return &out, c.Do(ctx, "POST", api.PathAuthenticate, req, &out, nil)
}

// ImportTokens calls POST /v1/tokens/import.
func (c *Client) ImportTokens(ctx context.Context, req api.TokenImport) ([]api.Token, error) {
	var out api.TokenList
	err := c.Do(ctx, "POST", api.PathTokensImport, req, &out, nil)
	return out.Tokens, err
}

// Tokens calls GET /v1/tokens.
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var out api.TokenList
	err := c.Do(ctx, "GET", api.PathTokens, nil, &out, nil)
	return out.Tokens, err
}

// Close closes the client's idle connections.
func (c *Client) Close() {
	if c.hc != nil {
		c.hc.CloseIdleConnections()
	}
}

// PasswordChanged calls POST /v1/accounts/{name}/password-changed (uid 0).
func (c *Client) PasswordChanged(ctx context.Context, name string) (*api.Account, error) {
	var out api.Account
	return &out, c.Do(ctx, "POST", devicePath(api.PathPasswordChanged, name, ""), nil, &out, nil)
}

// stream sends a long operation asking for NDJSON progress: each event
// goes to onEvent, and the last line (the result) is decoded into out or
// returned as a *api.Problem.
func (c *Client) stream(ctx context.Context, method, path string, in, out any, onEvent func(api.Event)) error {
	resp, err := c.send(ctx, method, path, in, http.Header{"Accept": {api.ContentNDJSON}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != api.ContentNDJSON {
		// A server that answered at once (no progress) sent the result whole.
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("client: bad progress line from %s: %w", path, err)
		}
		if e.Event != "result" {
			if onEvent != nil {
				onEvent(e)
			}
			continue
		}
		if e.OK == nil || !*e.OK {
			if e.Error != nil {
				return e.Error
			}
			return &api.Problem{Code: api.CodeInternal, Detail: "operation failed without a reason"}
		}
		if out != nil {
			return json.Unmarshal(sc.Bytes(), out)
		}
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("client: %s %s: stream ended without a result", method, path)
}

// AuthenticateKey calls POST /v1/authenticate without a code: the
// account's security keys, with progress ("touch_required", keepalives).
func (c *Client) AuthenticateKey(ctx context.Context, req api.Authenticate, onEvent func(api.Event)) (*api.AuthResult, error) {
	var out api.AuthResult
	return &out, c.stream(ctx, "POST", api.PathAuthenticate, req, &out, onEvent)
}

// AddKeyDevice calls POST /v1/accounts/{name}/devices for a security key,
// with progress.
func (c *Client) AddKeyDevice(ctx context.Context, account string, req api.CreateDevice, onEvent func(api.Event)) (*api.Enrollment, error) {
	req.Type = "fido"
	var out api.Enrollment
	return &out, c.stream(ctx, "POST", devicePath(api.PathDevices, account, ""), req, &out, onEvent)
}

// Keys calls GET /v1/keys.
func (c *Client) Keys(ctx context.Context) ([]api.Key, error) {
	var out api.KeyList
	err := c.Do(ctx, "GET", api.PathKeys, nil, &out, nil)
	return out.Keys, err
}

func keyPath(pattern, id string) string {
	return strings.Replace(pattern, "{id}", url.PathEscape(id), 1)
}

// WinkKey calls POST /v1/keys/{id}/wink.
func (c *Client) WinkKey(ctx context.Context, id string) error {
	return c.Do(ctx, "POST", keyPath(api.PathKeyWink, id), nil, nil, nil)
}

// SetKeyPIN calls POST /v1/keys/{id}/pin.
func (c *Client) SetKeyPIN(ctx context.Context, id string, req api.KeyPIN) error {
	return c.Do(ctx, "POST", keyPath(api.PathKeyPIN, id), req, nil, nil)
}

// ResetKey calls POST /v1/keys/{id}/reset.
func (c *Client) ResetKey(ctx context.Context, id string) error {
	return c.Do(ctx, "POST", keyPath(api.PathKeyReset, id), nil, nil, nil)
}

// CheckKey calls POST /v1/keys/{id}/check: the conformance battery, with
// progress (check_started, touch_required, do_not_touch, replug_required,
// check_done) when onEvent is not nil.
func (c *Client) CheckKey(ctx context.Context, id string, req api.KeyCheckRequest, onEvent func(api.Event)) (*api.KeyCheckReport, error) {
	var out api.KeyCheckReport
	if onEvent == nil {
		return &out, c.Do(ctx, "POST", keyPath(api.PathKeyCheck, id), req, &out, nil)
	}
	return &out, c.stream(ctx, "POST", keyPath(api.PathKeyCheck, id), req, &out, onEvent)
}

// Emulators calls GET /v1/emulators.
func (c *Client) Emulators(ctx context.Context) ([]api.Emulator, error) {
	var out api.EmulatorList
	err := c.Do(ctx, "GET", api.PathEmulators, nil, &out, nil)
	return out.Emulators, err
}

// AddEmulator calls POST /v1/emulators.
func (c *Client) AddEmulator(ctx context.Context, req api.AddEmulator) (*api.Emulator, error) {
	var out api.Emulator
	return &out, c.Do(ctx, "POST", api.PathEmulators, req, &out, nil)
}

// RemoveEmulator calls DELETE /v1/emulators/{id}.
func (c *Client) RemoveEmulator(ctx context.Context, id string) error {
	return c.Do(ctx, "DELETE", keyPath(api.PathEmulator, id), nil, nil, nil)
}

// EmulatorAction calls POST /v1/emulators/{id}/{action}: touch, unplug,
// plug, or fault (with f).
func (c *Client) EmulatorAction(ctx context.Context, id, action string, f *api.Fault) error {
	path := strings.NewReplacer("{id}", url.PathEscape(id), "{action}", url.PathEscape(action)).Replace(api.PathEmulatorAction)
	var in any
	if f != nil {
		in = f
	}
	return c.Do(ctx, "POST", path, in, nil, nil)
}

// Events calls GET /v1/events and hands each event to fn until ctx ends
// or fn returns false.
func (c *Client) Events(ctx context.Context, fn func(api.Event) bool) error {
	resp, err := c.send(ctx, "GET", api.PathEvents, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if ctx.Err() != nil {
				return nil // the caller ended the stream while a line was half read
			}
			return err
		}
		if !fn(e) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// DeactivateDevice calls POST /v1/accounts/{name}/devices/{id}/deactivate.
func (c *Client) DeactivateDevice(ctx context.Context, account, id string) (*api.Device, error) {
	var out api.Device
	return &out, c.Do(ctx, "POST", devicePath(api.PathDeviceDeactivate, account, id), nil, &out, nil)
}

// DeleteDevice calls DELETE /v1/accounts/{name}/devices/{id}.
func (c *Client) DeleteDevice(ctx context.Context, account, id string, returnToInventory bool) error {
	p := devicePath(api.PathDevice, account, id)
	if returnToInventory {
		p += "?return_to_inventory=true"
	}
	return c.Do(ctx, "DELETE", p, nil, nil, nil)
}

// ReplaceDevice calls POST /v1/accounts/{name}/devices/{id}/replace; a
// security key replacement streams its progress to onEvent.
func (c *Client) ReplaceDevice(ctx context.Context, account, id string, req api.CreateDevice, onEvent func(api.Event)) (*api.Enrollment, error) {
	var out api.Enrollment
	p := devicePath(api.PathDeviceReplace, account, id)
	if req.Type == "fido" {
		return &out, c.stream(ctx, "POST", p, req, &out, onEvent)
	}
	return &out, c.Do(ctx, "POST", p, req, &out, nil)
}

// ReportLost calls POST /v1/accounts/{name}/devices/{id}/report-lost.
func (c *Client) ReportLost(ctx context.Context, account, id string) (*api.Device, error) {
	var out api.Device
	return &out, c.Do(ctx, "POST", devicePath(api.PathDeviceReportLost, account, id), nil, &out, nil)
}

// TemporaryCode calls POST /v1/accounts/{name}/temporary-code.
func (c *Client) TemporaryCode(ctx context.Context, account string, ttlHours int) (*api.TemporaryCode, error) {
	var out api.TemporaryCode
	return &out, c.Do(ctx, "POST", devicePath(api.PathTemporaryCode, account, ""), api.TemporaryCodeRequest{TTLHours: ttlHours}, &out, nil)
}

// ChangeContact calls POST /v1/accounts/{name}/contact.
func (c *Client) ChangeContact(ctx context.Context, account string, req api.ContactChange) (*api.ContactSent, error) {
	var out api.ContactSent
	return &out, c.Do(ctx, "POST", devicePath(api.PathContact, account, ""), req, &out, nil)
}

// VerifyContact calls POST /v1/accounts/{name}/contact/verify.
func (c *Client) VerifyContact(ctx context.Context, account, code string) (*api.Account, error) {
	var out api.Account
	return &out, c.Do(ctx, "POST", devicePath(api.PathContactVerify, account, ""), api.Code{Code: code}, &out, nil)
}

// StartRecovery calls POST /v1/recovery.
func (c *Client) StartRecovery(ctx context.Context, account string) (*api.Recovery, error) {
	var out api.Recovery
	return &out, c.Do(ctx, "POST", api.PathRecovery, api.RecoveryStart{Account: account}, &out, nil)
}

// RecoveryStep calls POST /v1/recovery/{id}/{step}: "email" or "phone"
// with the code, or "resend" (code empty).
func (c *Client) RecoveryStep(ctx context.Context, id, step, code string) (*api.Recovery, error) {
	var out api.Recovery
	var in any
	if step != "resend" {
		in = api.Code{Code: code}
	}
	p := strings.NewReplacer("{id}", url.PathEscape(id), "{step}", url.PathEscape(step)).Replace(api.PathRecoveryStep)
	return &out, c.Do(ctx, "POST", p, in, &out, nil)
}
