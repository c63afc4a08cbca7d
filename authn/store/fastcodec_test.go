package store

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// randTime is a zero time, or one with or without nanoseconds, in UTC or
// another zone.
func randTime(rng *rand.Rand) time.Time {
	switch rng.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(rng.Int64N(4e9), 0).UTC()
	case 2:
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
	}
	return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("", (rng.IntN(48)-24)*1800))
}

func randText(rng *rand.Rand) string {
	alphabet := []string{"", "a", "dev-0123456789abcdef", "hardware-otp", "é", "日本", "\x00", `"q"`}
	s := ""
	for range rng.IntN(4) {
		s += alphabet[rng.IntN(len(alphabet))]
	}
	return s
}

func randInt(rng *rand.Rand) int64 {
	switch rng.IntN(5) {
	case 0:
		return 0
	case 1:
		return rng.Int64N(24) - 12
	case 2:
		return rng.Int64N(1<<17) - 1<<16
	case 3:
		return math.MaxInt64 - rng.Int64N(3)
	}
	return math.MinInt64 + rng.Int64N(3)
}

func randDeviceRec(rng *rand.Rand) *deviceRecord {
	r := &deviceRecord{ID: randText(rng), Account: randText(rng), Type: randText(rng), State: randText(rng),
		Label: randText(rng), Serial: randText(rng), CreatedAt: randTime(rng), ExpiresAt: randTime(rng),
		ActivatedAt: randTime(rng), DeactivatedAt: randTime(rng), LastUsedAt: randTime(rng),
		ResyncFailures: int(randInt(rng)), ResyncWindowStart: randTime(rng)}
	if rng.IntN(2) == 0 {
		r.Sealed = bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(300))
	}
	r.OTP = &otpRec{Event: rng.IntN(2) == 0, Algorithm: randText(rng), Digits: int(randInt(rng)), Period: int(randInt(rng)),
		LastCounter: uint64(randInt(rng)), Used: rng.IntN(2) == 0, Drift: randInt(rng)}
	return r
}

func randAuditRec(rng *rand.Rand) *auditRec {
	return &auditRec{Seq: uint64(randInt(rng)), Time: randTime(rng), ActorUID: uint32(randInt(rng)), Actor: randText(rng),
		Action: randText(rng), Outcome: randText(rng), Account: randText(rng), Device: randText(rng), Detail: randText(rng)}
}

// The hand encoders write what the CBOR codec writes, and the hand decoder
// reads it back as the codec does.
func TestHandCodecMatchesCBOR(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		d := randDeviceRec(rng)
		want, err := encode(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeDevice(d)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("device %d %+v:\nhand  %x (%v)\ncodec %x", i, d, got, err, want)
		}
		var byCodec, byHand deviceRecord
		if err := decode(want, &byCodec); err != nil {
			t.Fatal(err)
		}
		if !decodeOTPDeviceRec(want, &byHand) {
			t.Fatalf("device %d: the hand decoder refused %x", i, want)
		}
		if !reflect.DeepEqual(byHand, byCodec) {
			t.Fatalf("device %d:\nhand  %+v\ncodec %+v", i, byHand, byCodec)
		}

		a := randAuditRec(rng)
		want, err = encode(a)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := encodeAudit(a); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("audit %d %+v:\nhand  %x (%v)\ncodec %x", i, a, got, err, want)
		}
	}
}

// What the hand codec does not write by hand takes the codec's way, with
// the codec's answer: a FIDO device, a time the codec refuses.
func TestHandCodecLeavesTheRestToCBOR(t *testing.T) {
	fido := &deviceRecord{ID: "k", Account: "a", Type: "security-key", State: "active",
		FIDO: &fidoRec{CredentialID: []byte{1}, PublicKey: []byte{2}, AttestationObject: []byte{3}, ClientDataJSON: []byte("{}")}}
	want, _ := encode(fido)
	if got, err := encodeDevice(fido); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("FIDO device: %x (%v), want %x", got, err, want)
	}
	var back deviceRecord
	if err := decodeDeviceRec(want, &back); err != nil || !reflect.DeepEqual(&back, fido) {
		t.Fatalf("FIDO device reads %+v (%v)", back, err)
	}
	far := &auditRec{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Action: "x"}
	_, codecErr := encode(far)
	if _, err := encodeAudit(far); err == nil || codecErr == nil {
		t.Fatalf("a year-10000 time encodes (hand: %v, codec: %v)", err, codecErr)
	}
	// A record the hand decoder does not read (an unknown key) is the codec's.
	odd, _ := encode(map[string]any{"id": "x", "otp": map[string]any{"digits": 6}, "future_field": 1})
	var byHand, byCodec deviceRecord
	if decodeOTPDeviceRec(odd, &byHand) {
		t.Fatal("the hand decoder read a record with an unknown key")
	}
	if err := decodeDeviceRec(odd, &byHand); err != nil || decode(odd, &byCodec) != nil || !reflect.DeepEqual(byHand, byCodec) {
		t.Fatalf("unknown key: %+v (%v), codec %+v", byHand, err, byCodec)
	}
}

// deviceKind tells a record's state and kind as the codec reads them.
func TestDeviceKind(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		d := randDeviceRec(rng)
		if i%2 == 0 {
			d.OTP, d.FIDO = nil, &fidoRec{CredentialID: []byte{1}, PublicKey: []byte{2}, AttestationObject: []byte{3}}
		}
		b, _ := encode(d)
		if state, otp, ok := deviceKind(b); !ok || state != d.State || otp != (d.OTP != nil) {
			t.Fatalf("deviceKind(%+v) = %q, %v, %v", d, state, otp, ok)
		}
	}
	for _, odd := range []map[string]any{
		{"state": "active", "STATE": "pending"},
		{"state": "active", "Otp": map[string]any{}},
		{"id": "x"},
	} {
		b, _ := encode(odd)
		if _, _, ok := deviceKind(b); ok {
			t.Errorf("deviceKind told the kind of %v", odd)
		}
	}
}

// Whatever the hand decoder accepts, the codec reads the same; whatever
// deviceKind tells of a record, the codec reads so (but for an otp field
// the codec reads as none, a null: the caller decodes such a record).
func FuzzDecodeOTPDeviceRec(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		b, _ := encode(randDeviceRec(rng))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var byHand, byCodec deviceRecord
		if state, otp, ok := deviceKind(b); ok && decode(b, &byCodec) == nil && (state != byCodec.State || !otp && byCodec.OTP != nil) {
			t.Fatalf("deviceKind(%x) = %q, %v; the codec reads %+v", b, state, otp, byCodec)
		}
		byCodec = deviceRecord{}
		if !decodeOTPDeviceRec(b, &byHand) {
			return
		}
		if err := decode(b, &byCodec); err != nil {
			t.Fatalf("the hand decoder read %x, which the codec refuses: %v", b, err)
		}
		if !reflect.DeepEqual(byHand, byCodec) {
			t.Fatalf("%x:\nhand  %+v\ncodec %+v", b, byHand, byCodec)
		}
	})
}

func randAccountRec(rng *rand.Rand) *accountRec {
	a := &accountRec{Name: randText(rng), Kind: randText(rng), Email: randText(rng), EmailVerified: rng.IntN(2) == 0,
		Phone: randText(rng), PhoneVerified: rng.IntN(2) == 0, CreatedAt: randTime(rng), UpdatedAt: randTime(rng),
		EverEnrolled: rng.IntN(2) == 0, FailedAttempts: int(randInt(rng)), LastFailureAt: randTime(rng), LockedUntil: randTime(rng)}
	for range rng.IntN(3) {
		a.Flags = append(a.Flags, randText(rng))
	}
	switch rng.IntN(8) { // the parts the hand decoder leaves to the codec
	case 0:
		a.TempCode = &tempCodeRec{Hash: []byte{1, 2}, ExpiresAt: randTime(rng), IssuedBy: randText(rng)}
	case 1:
		a.ScratchCodes = [][]byte{{3}, {4}}
	case 2:
		a.PendingContact = &pendingContact{Kind: "email", Value: randText(rng), CodeHash: []byte{5}, ExpiresAt: randTime(rng)}
	}
	return a
}

// The hand decoder reads a plain account's record as the codec does, and
// leaves every other one to it.
func TestAccountHandDecoderMatchesCBOR(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	byHandCount := 0
	for i := range 20000 {
		a := randAccountRec(rng)
		b, err := encode(a)
		if err != nil {
			t.Fatal(err)
		}
		var byCodec, byHand, viaBoth accountRec
		if err := decode(b, &byCodec); err != nil {
			t.Fatal(err)
		}
		plain := a.TempCode == nil && a.ScratchCodes == nil && a.PendingContact == nil
		if got := decodePlainAccountRec(b, &byHand); got != plain {
			t.Fatalf("account %d %+v: read by hand %v, want %v", i, a, got, plain)
		}
		if plain {
			byHandCount++
			if !reflect.DeepEqual(byHand, byCodec) {
				t.Fatalf("account %d:\nhand  %+v\ncodec %+v", i, byHand, byCodec)
			}
		}
		if err := decodeAccountRec(b, &viaBoth); err != nil || !reflect.DeepEqual(viaBoth, byCodec) {
			t.Fatalf("account %d: decodeAccountRec %+v (%v), codec %+v", i, viaBoth, err, byCodec)
		}
	}
	if byHandCount == 0 {
		t.Fatal("no account read by hand")
	}
}

func FuzzDecodeAccountRec(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		b, _ := encode(randAccountRec(rng))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var byHand, byCodec accountRec
		if !decodePlainAccountRec(b, &byHand) {
			return
		}
		if err := decode(b, &byCodec); err != nil {
			t.Fatalf("the hand decoder read %x, which the codec refuses: %v", b, err)
		}
		if !reflect.DeepEqual(byHand, byCodec) {
			t.Fatalf("%x:\nhand  %+v\ncodec %+v", b, byHand, byCodec)
		}
	})
}
