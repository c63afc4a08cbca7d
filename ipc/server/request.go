package server

import "github.com/mfad/mfad/ipc/api"

// decodeAuthenticate reads a sign-in's body by hand when it is in the
// plain form every client here sends: one object, each known field at
// most once, with the exact key, strings of printable ASCII without
// escapes, wait_for_key as true or false, JSON's blanks around. ok is
// false for anything else, which decodeStrict then reads (and refuses
// or accepts as encoding/json does); when ok, the result is the one
// decodeStrict gives (FuzzDecodeAuthenticate holds the two together).
// A code sign-in is the request mfad answers most, and encoding/json's
// reflection was a tenth of the router's time on it.
func decodeAuthenticate(body []byte, v *api.Authenticate) (ok bool) {
	p := jsonScan{b: body}
	p.blank()
	if !p.byte('{') {
		return false
	}
	var out api.Authenticate
	var seen uint8
	p.blank()
	if p.byte('}') {
		p.blank()
		*v = out
		return p.end()
	}
	for {
		key, ok := p.plainString()
		if !ok {
			return false
		}
		p.blank()
		if !p.byte(':') {
			return false
		}
		p.blank()
		var field *string
		var bit uint8
		switch key {
		case "account":
			field, bit = &out.Account, 1
		case "code":
			field, bit = &out.Code, 2
		case "next_code":
			field, bit = &out.NextCode, 4
		case "pin":
			field, bit = &out.PIN, 8
		case "recovery_token":
			field, bit = &out.RecoveryToken, 16
		case "wait_for_key":
			bit = 32
		default:
			return false // unknown, or another letter case: decodeStrict decides
		}
		if seen&bit != 0 {
			return false // repeated: encoding/json keeps the last, decodeStrict says so
		}
		seen |= bit
		if field != nil {
			if *field, ok = p.plainString(); !ok {
				return false
			}
		} else if out.WaitForKey, ok = p.boolean(); !ok {
			return false
		}
		p.blank()
		if p.byte('}') {
			break
		}
		if !p.byte(',') {
			return false
		}
		p.blank()
	}
	p.blank()
	if !p.end() {
		return false
	}
	*v = out
	return true
}

// jsonScan reads the plain JSON subset decodeAuthenticate takes.
type jsonScan struct {
	b []byte
	i int
}

func (p *jsonScan) blank() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScan) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonScan) end() bool { return p.i == len(p.b) }

// plainString reads a string of printable ASCII without a backslash.
func (p *jsonScan) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", false
		}
	}
	return "", false
}

func (p *jsonScan) boolean() (bool, bool) {
	rest := p.b[p.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		p.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		p.i += 5
		return false, true
	}
	return false, false
}
