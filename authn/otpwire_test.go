package authn_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
)

func TestParseOTPParams(t *testing.T) {
	if p, err := authn.ParseOTPParams("", 0, 0); p != nil || err != nil {
		t.Errorf("no parameters asked for: %+v, %v; want nil, nil", p, err)
	}
	p, err := authn.ParseOTPParams("hmac-sha256", 8, 0)
	if err != nil || p.Algorithm.String() != "SHA256" || p.Digits != 8 || p.Period != 30*time.Second {
		t.Errorf("SHA256, 8 digits: %+v, %v", p, err)
	}
	p, err = authn.ParseOTPParams("", 0, 60)
	if err != nil || p.Algorithm.String() != "SHA1" || p.Digits != 6 || p.Period != time.Minute {
		t.Errorf("60 s: %+v, %v", p, err)
	}
	_, err = authn.ParseOTPParams("MD5", 6, 30)
	var ae *authn.Error
	if !errors.As(err, &ae) || ae.Class != authn.ClassInvalid {
		t.Errorf("MD5: %v, want an invalid-request error", err)
	}
	if s := authn.EncodeSecret([]byte("12345678901234567890")); s != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Errorf("EncodeSecret(RFC 6238 seed) = %s", s)
	}
}
