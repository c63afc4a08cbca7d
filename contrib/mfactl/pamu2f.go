package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
)

// u2fCredential is one credential of a pam-u2f authfile line.
type u2fCredential struct {
	user    string
	line    int
	req     api.ImportDevice
	options string
}

// decodeB64 takes standard or URL-safe base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// parsePamU2F reads pam-u2f's authfile (the central one or
// ~/.config/Yubico/u2f_keys): per line `user:cred:cred...`, each cred
// either `keyHandle,publicKey,coseType,options` (current: base64 key handle
// and key) or `keyHandle,publicKey` (old: base64 key handle, hex
// uncompressed P-256 point). Errors never quote the keys.
func parsePamU2F(r io.Reader, origin string) ([]u2fCredential, error) {
	var out []u2fCredential
	sc := bufio.NewScanner(io.LimitReader(r, maxImportFile))
	sc.Buffer(make([]byte, 64<<10), maxImportFile)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		fields := strings.Split(l, ":")
		user := fields[0]
		if user == "" || len(fields) < 2 || strings.ContainsAny(user, " ,") {
			return nil, fmt.Errorf("line %d is not of the form user:credential", n)
		}
		for i, cred := range fields[1:] {
			parts := strings.Split(cred, ",")
			c := u2fCredential{user: user, line: n, req: api.ImportDevice{Kind: "fido", Origin: origin, Source: "pam-u2f"}}
			var err error
			switch len(parts) {
			case 2: // old format
				c.req.Alg = "es256"
				if c.req.CredentialID, err = decodeB64(parts[0]); err != nil || len(c.req.CredentialID) == 0 {
					return nil, fmt.Errorf("line %d, credential %d: the key handle is not base64", n, i+1)
				}
				if c.req.PublicKey, err = hex.DecodeString(parts[1]); err != nil || len(c.req.PublicKey) != 65 {
					return nil, fmt.Errorf("line %d, credential %d: the public key is not a hex P-256 point", n, i+1)
				}
			case 4:
				c.req.Alg, c.options = strings.ToLower(parts[2]), parts[3]
				if c.req.CredentialID, err = decodeB64(parts[0]); err != nil || len(c.req.CredentialID) == 0 {
					return nil, fmt.Errorf("line %d, credential %d: the key handle is not base64", n, i+1)
				}
				if c.req.PublicKey, err = decodeB64(parts[1]); err != nil || len(c.req.PublicKey) == 0 {
					return nil, fmt.Errorf("line %d, credential %d: the public key is not base64", n, i+1)
				}
				for _, o := range strings.Split(strings.TrimPrefix(c.options, "+"), "+") {
					switch o {
					case "", "presence", "verification", "pin":
					default:
						return nil, fmt.Errorf("line %d, credential %d: unknown option %q", n, i+1, o)
					}
				}
			default:
				return nil, fmt.Errorf("line %d, credential %d: neither keyHandle,publicKey nor keyHandle,publicKey,type,options", n, i+1)
			}
			out = append(out, c)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func importPamU2FCmd(a *app) *cobra.Command {
	var apply bool
	var origin, label string
	cmd := &cobra.Command{Use: "pam-u2f FILE", Short: "Import pam-u2f's authfile: each credential becomes a security key device of its user's account",
		Long: `Import the credentials of pam-u2f's authfile (the central file given to
pam_u2f.so authfile=, or a user's ~/.config/Yubico/u2f_keys), in the old
(keyHandle,publicKey) and the current (keyHandle,publicKey,type,options)
format. Each becomes an active security key device of the account named on
its line, marked imported (there is no attestation to check), usable at once
with the same key. The credentials were made for pam-u2f's origin (default
pam://HOSTNAME, pam_u2f.so origin=): it must be mfad's relying party
([fido] rp_id), else they are refused, never imported unusable.`,
		Example: `  mfactl import pam-u2f /etc/u2f_mappings
  mfactl import pam-u2f /home/alice/.config/Yubico/u2f_keys --apply
  mfactl import pam-u2f /etc/u2f_mappings --origin pam://workstation --apply`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if origin == "" {
				host, err := os.Hostname()
				if err != nil {
					return usagef("give --origin: the host name is unknown (%v)", err)
				}
				origin = "pam://" + host
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			creds, err := parsePamU2F(f, origin)
			f.Close()
			if err != nil {
				return usagef("%s: %v", args[0], err)
			}
			if len(creds) == 0 {
				return usagef("%s holds no credential", args[0])
			}
			items := make([]importItem, 0, len(creds))
			for i, c := range creds {
				it := importItem{where: fmt.Sprintf("%s:%d", args[0], c.line), account: c.user, req: c.req}
				it.req.Label = label
				if it.req.Label == "" {
					it.req.Label = fmt.Sprintf("pam-u2f %d", i+1)
				}
				if strings.Contains(c.options, "verification") || strings.Contains(c.options, "pin") {
					it.notes = append(it.notes, "pam-u2f asked this key for "+strings.TrimPrefix(c.options, "+")+"; mfad's [fido] require_uv decides")
				}
				items = append(items, it)
			}
			return a.runImport(cmd, items, apply)
		}}
	cmd.Flags().StringVar(&origin, "origin", "", "pam-u2f's `ORIGIN` (pam_u2f.so origin=; default pam://HOSTNAME)")
	cmd.Flags().StringVar(&label, "label", "", "the new devices' `LABEL` (default \"pam-u2f N\")")
	cmd.Flags().BoolVar(&apply, "apply", false, "import (without it: report what would be imported)")
	return cmd
}
