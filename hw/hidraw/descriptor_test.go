package hidraw

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Descriptors of the fake sysfs tree, plus edge cases. HUTRR48 and
// CTAP 2.2 §11.2.8.1 give the standard FIDO descriptor; YubiKey 5, Solo 1
// and Nitrokey 3 firmware declare it byte for byte.
func TestParseReportDescriptor(t *testing.T) {
	fido := Usage{Page: 0xF1D0, ID: 0x01}
	tests := []struct {
		name   string
		desc   string
		want   []Usage
		isFIDO bool
		err    bool
	}{
		{name: "standard FIDO (YubiKey 5, Solo 1, Nitrokey 3)", desc: hex.EncodeToString(FIDOReportDescriptor()), want: []Usage{fido}, isFIDO: true},
		{name: "YubiKey OTP keyboard", desc: "05 01 09 06 a1 01 05 07 19 e0 29 e7 15 00 25 01 75 01 95 08 81 02 95 01 75 08 81 01 95 05 75 01 05 08 19 01 29 05 91 02 95 01 75 03 91 01 95 06 75 08 15 00 25 65 05 07 19 00 29 65 81 00 09 03 75 08 95 08 b1 02 c0", want: []Usage{{Page: 1, ID: 6}}},
		{name: "4-byte usage and a long item", desc: "05 01 0b 01 00 d0 f1 fe 02 10 aa bb a1 01 09 20 81 02 c0", want: []Usage{fido}, isFIDO: true},
		{name: "usage page pushed and popped", desc: "06 d0 f1 a4 05 01 b4 09 01 a1 01 c0", want: []Usage{fido}, isFIDO: true},
		{name: "FIDO after a vendor collection with report ids", desc: "06 00 ff 09 01 a1 01 85 01 09 01 75 08 95 3f 81 02 c0 06 d0 f1 09 01 a1 01 85 02 09 20 75 08 95 40 81 02 c0", want: []Usage{{0xff00, 1}, fido}, isFIDO: true},
		{name: "FIDO page, other usage", desc: "06 d0 f1 09 02 a1 01 c0", want: []Usage{{0xF1D0, 2}}},
		{name: "FIDO usage nested, not top-level", desc: "05 01 09 02 a1 01 06 d0 f1 09 01 a1 00 c0 c0", want: []Usage{{1, 2}}},
		{name: "collection without usage", desc: "06 d0 f1 a1 01 c0", want: []Usage{{0xF1D0, 0}}},
		{name: "empty", desc: "", want: nil},
		{name: "truncated", desc: "06 d0 f1 09 01 a1 01 09 20 15 00 26 ff", err: true},
		{name: "truncated 4-byte item", desc: "0b 01 00 d0", err: true},
		{name: "truncated long item", desc: "fe 05 10 aa", err: true},
		{name: "long item header cut", desc: "fe 05", err: true},
		{name: "unclosed collection", desc: "06 d0 f1 09 01 a1 01", err: true},
		{name: "end without collection", desc: "c0", err: true},
		{name: "pop without push", desc: "b4", err: true},
		{name: "too many pushes", desc: strings.Repeat("a4 ", maxPush+1), err: true},
		{name: "too deep", desc: strings.Repeat("a1 00 ", maxDepth+1) + strings.Repeat("c0 ", maxDepth+1), err: true},
		{name: "at the depth limit", desc: "09 07 " + strings.Repeat("a1 00 ", maxDepth) + strings.Repeat("c0 ", maxDepth), want: []Usage{{0, 7}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			desc := unhex(t, tc.desc)
			got, err := ParseReportDescriptor(desc)
			if tc.err {
				if !errors.Is(err, ErrDescriptor) {
					t.Fatalf("err = %v, want ErrDescriptor", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("usages = %v, want %v", got, tc.want)
			}
			if IsFIDO(desc) != tc.isFIDO {
				t.Errorf("IsFIDO = %v, want %v", !tc.isFIDO, tc.isFIDO)
			}
		})
	}
}

func TestParseReportDescriptorTooLong(t *testing.T) {
	desc := append(FIDOReportDescriptor(), make([]byte, MaxDescriptorSize)...)
	if _, err := ParseReportDescriptor(desc); !errors.Is(err, ErrDescriptor) {
		t.Fatalf("err = %v", err)
	}
}

func TestFIDOReportDescriptorIsACopy(t *testing.T) {
	d := FIDOReportDescriptor()
	d[0] = 0
	if FIDOReportDescriptor()[0] != 0x06 {
		t.Fatal("FIDOReportDescriptor shares its bytes")
	}
	if len(d) != 34 {
		t.Fatalf("len = %d, want 34", len(d))
	}
}

// FuzzParseReportDescriptor: any bytes parse to usages or ErrDescriptor,
// never a panic; at most maxCollections usages; appending a byte to a
// descriptor that failed on a truncated item never makes the prefix's
// collections disappear silently.
func FuzzParseReportDescriptor(f *testing.F) {
	f.Add(FIDOReportDescriptor())
	matches, _ := filepath.Glob("testdata/sys/devices/*/*/*/*/*/*/report_descriptor")
	uhid, _ := filepath.Glob("testdata/sys/devices/virtual/misc/uhid/*/report_descriptor")
	for _, m := range append(matches, uhid...) {
		if b, err := os.ReadFile(m); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{0xfe, 0xff, 0x00})
	f.Add(bytes.Repeat([]byte{0xa1, 0x01}, 40))
	f.Fuzz(func(t *testing.T, desc []byte) {
		usages, err := ParseReportDescriptor(desc)
		if err != nil {
			if !errors.Is(err, ErrDescriptor) {
				t.Fatalf("error %v does not wrap ErrDescriptor", err)
			}
			if usages != nil {
				t.Fatal("usages returned with an error")
			}
			if IsFIDO(desc) {
				t.Fatal("IsFIDO true on a malformed descriptor")
			}
			return
		}
		if len(usages) > maxCollections {
			t.Fatalf("%d usages", len(usages))
		}
	})
}
