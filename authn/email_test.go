package authn

import (
	"regexp"
	"strings"
	"testing"
)

// emailShape is the expression validEmail matches by hand.
var emailShape = regexp.MustCompile(`^[^@\s]{1,64}@[^@\s]{1,255}$`)

func TestValidEmailIsTheExpression(t *testing.T) {
	cases := []string{"", "@", "a@", "@b", "a@b", "a@b@c", "a b@c", "a@b c", "a\t@b", "a@b\n", "a@b\v", "a@b\f", "a\r@b",
		"jöse@exämple.org", "\xff@\xfe", "a\x00@b", strings.Repeat("a", 64) + "@b", strings.Repeat("a", 65) + "@b",
		"a@" + strings.Repeat("b", 255), "a@" + strings.Repeat("b", 256), strings.Repeat("é", 64) + "@b", strings.Repeat("é", 65) + "@b",
		"a@" + strings.Repeat("\xff", 255), "a@" + strings.Repeat("\xff", 256), "a\u00a0@b", "a\u2028@b", "a@b\u3000"}
	for _, c := range cases {
		if got, want := validEmail(c), emailShape.MatchString(c); got != want {
			t.Errorf("validEmail(%q) = %v, the expression says %v", c, got, want)
		}
	}
}

func FuzzValidEmail(f *testing.F) {
	f.Add("alice@example.org")
	f.Add("a b@\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validEmail(s), emailShape.MatchString(s); got != want {
			t.Fatalf("validEmail(%q) = %v, the expression says %v", s, got, want)
		}
	})
}
