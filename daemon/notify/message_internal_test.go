package notify

import (
	"errors"
	"strings"
	"testing"
)

func TestEncodeSubject(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain ASCII", "plain ASCII"},
		{"café", "=?utf-8?q?caf=C3=A9?="},
	} {
		if got := encodeSubject(tc.in); got != tc.want {
			t.Errorf("encodeSubject(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := encodeSubject(strings.Repeat("é", 80))
	if !strings.Contains(long, "?=\r\n =?utf-8?q?") {
		t.Errorf("long subject not folded: %q", long)
	}
}

func TestBodyRedactor(t *testing.T) {
	r := bodyRedactor("Your code is 482913 (or 1234-5678); temporary code ABCDEFGHJKMNPQRS. Expires 2026.")
	got := r.String("relay said: 482913 1234 5678 ABCDEFGHJKMNPQRS code Your")
	want := "relay said: [redacted] [redacted] [redacted] [redacted] code Your"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	err := r.Error(errors.Join(ErrDelivery, errors.New("482913")))
	if !errors.Is(err, ErrDelivery) || strings.Contains(err.Error(), "482913") {
		t.Errorf("redacted error %v lost its class or kept the code", err)
	}
}

func TestBoundedBuffer(t *testing.T) {
	b := &boundedBuffer{max: 8}
	n, err := b.Write([]byte("hello\nworld\n"))
	if n != 12 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	b.Write([]byte("more"))
	if got := b.String(); got != "hello wo ..." {
		t.Errorf("String() = %q", got)
	}
}
