package store

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

func at(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

// What testdata/schema-v3.db holds (see testdata/README).
var (
	fixtureAccounts = []authn.Account{
		{Name: "alice", Kind: authn.KindOwner, Email: "alice@example.org", EmailVerified: true,
			Phone: "+44 20 7946 0000", PhoneVerified: true, Flags: []string{authn.FlagPasswordChangeRequired},
			CreatedAt: at("2026-01-02T03:04:05.123456789Z"), UpdatedAt: at("2026-01-03T04:05:06Z"), EverEnrolled: true,
			FailedAttempts: 2, LastFailureAt: at("2026-01-03T04:00:00Z"), LockedUntil: at("2026-01-03T04:15:00Z"),
			TempCode:       &authn.TempCodeState{Hash: []byte{1, 2, 3, 4}, ExpiresAt: at("2026-01-04T00:00:00Z"), IssuedBy: "root"},
			PendingContact: &authn.PendingContact{Kind: "email", Value: "new@example.org", CodeHash: []byte{9, 8, 7}, ExpiresAt: at("2026-01-03T05:00:00Z"), Attempts: 1}},
		{Name: "bob", Kind: authn.KindMember, CreatedAt: at("2026-01-02T03:04:05Z"), UpdatedAt: at("2026-01-02T03:04:05Z")},
	}
	fixtureDevices = []authn.Device{
		{ID: "fido1", Account: "alice", Type: authn.DeviceFIDO, State: authn.StateActive, Label: "yubikey",
			CreatedAt: at("2026-01-02T03:09:00Z"), ActivatedAt: at("2026-01-02T03:09:00Z"),
			FIDO: &authn.FIDOState{CredentialID: []byte{0xc1, 0xc2}, PublicKey: []byte{0xa5, 0x01, 0x02}, Alg: -7,
				AAGUID: "cb69481e-8ff7-4039-93ec-0a2729a154a8", SignCount: 17, Format: "packed", AttestationType: "basic",
				Verdict: "trusted", Model: "YubiKey 5", Software: true, PossiblyCloned: true,
				AttestationObject: []byte{0xa3, 0x63}, ClientDataJSON: []byte(`{"type":"webauthn.create"}`),
				LastAssertion: &authn.SignedAssertion{AuthData: []byte{1, 1}, Signature: []byte{2, 2}, ClientDataJSON: []byte(`{"type":"webauthn.get"}`)}}},
		{ID: "hotp1", Account: "alice", Type: authn.DeviceHardwareOTP, State: authn.StateDeactivated, Serial: "TOK-0001",
			CreatedAt: at("2026-01-02T03:07:00Z"), ActivatedAt: at("2026-01-02T03:08:00Z"), DeactivatedAt: at("2026-01-02T09:00:00Z"),
			OTP:    &authn.OTPState{Event: true, Algorithm: "SHA256", Digits: 8, LastCounter: 41},
			Secret: []byte("hotp-secret-32-bytes-long-abcdef")},
		{ID: "totp1", Account: "alice", Type: authn.DeviceTOTP, State: authn.StateActive, Label: "phone",
			CreatedAt: at("2026-01-02T03:05:00Z"), ActivatedAt: at("2026-01-02T03:06:00Z"), LastUsedAt: at("2026-01-03T04:05:06Z"),
			OTP:            &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30, LastCounter: 59000000, Used: true, Drift: -1},
			ResyncFailures: 1, ResyncWindowStart: at("2026-01-03T04:00:00Z"),
			Secret: []byte("12345678901234567890")},
		{ID: "pend1", Account: "bob", Type: authn.DeviceTOTP, State: authn.StatePending,
			CreatedAt: at("2026-01-02T03:10:00Z"), ExpiresAt: at("2026-01-02T03:20:00Z"),
			OTP:    &authn.OTPState{Algorithm: "SHA512", Digits: 8, Period: 60},
			Secret: []byte("bob-pending-seed-0000")},
	}
	fixtureTokens = []authn.Token{
		{Serial: "TOK-0001", Manufacturer: "Feitian", Model: "c200", OTP: authn.OTPState{Event: true, Algorithm: "SHA256", Digits: 8, LastCounter: 41},
			ImportedAt: at("2026-01-01T00:00:00Z"), AssignedTo: "alice", DeviceID: "hotp1", Retired: true, Secret: []byte("hotp-secret-32-bytes-long-abcdef")},
		{Serial: "TOK-0002", OTP: authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30},
			ImportedAt: at("2026-01-01T00:00:00Z"), Secret: []byte("token-two-secret-000")},
	}
	fixtureAudit = []authn.AuditEvent{
		{Seq: 1, Time: at("2026-01-02T03:04:05Z"), ActorUID: 0, Actor: "root", Action: authn.ActAccountCreate, Outcome: "ok", Account: "alice"},
		{Seq: 2, Time: at("2026-01-03T04:05:06Z"), ActorUID: 1000, Action: "device.verify", Outcome: "fail", Account: "alice", Device: "totp1", Detail: "invalid code"},
	}
)

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// TestFixtureDatabaseReads: a database written before the store had its
// own record types reads back every value it holds.
func TestFixtureDatabaseReads(t *testing.T) {
	dir := fixtureState(t)
	s, err := Open(dir, fixtureKey(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(func(tx authn.Tx) error {
		accts, err := tx.Accounts()
		if err != nil {
			return err
		}
		equal(t, "accounts", accts, fixtureAccounts)
		var devs []authn.Device
		for _, a := range []string{"alice", "bob"} {
			d, err := tx.Devices(a)
			if err != nil {
				return err
			}
			devs = append(devs, d...)
		}
		equal(t, "devices", devs, fixtureDevices)
		toks, err := tx.Tokens()
		if err != nil {
			return err
		}
		equal(t, "tokens", toks, fixtureTokens)
		ev, err := tx.Audit(0, 10)
		if err != nil {
			return err
		}
		equal(t, "audit", ev, fixtureAudit)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.LoadBlob("emulator/soft1"); err != nil || string(b) != "software key state" {
		t.Errorf("blob = %q, %v", b, err)
	}
	if v, _ := s.Meta("rp_id"); v != "pam://fixture-host" {
		t.Errorf("rp_id = %q", v)
	}
}

// TestRecordsEncodeAsTheFixture: every record of the fixture, read into
// the store's record type and written again, gives the same bytes: the
// record types keep the keys, their order and what they omit.
func TestRecordsEncodeAsTheFixture(t *testing.T) {
	db, err := bolt.Open(fixtureBackup(t), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	same := func(where string, raw []byte, rec any) {
		t.Helper()
		n++
		if err := decode(raw, rec); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		out, err := encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, raw) {
			t.Errorf("%s re-encodes differently:\n got %x\nwant %x", where, out, raw)
		}
	}
	db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktRoot)
		root.Bucket(bktAccounts).ForEach(func(k, v []byte) error { same("account "+string(k), v, new(accountRec)); return nil })
		root.Bucket(bktDevices).ForEach(func(acct, _ []byte) error {
			return root.Bucket(bktDevices).Bucket(acct).ForEach(func(k, v []byte) error {
				same("device "+string(acct)+"/"+string(k), v, new(deviceRecord))
				return nil
			})
		})
		root.Bucket(bktTokens).ForEach(func(k, v []byte) error { same("token "+string(k), v, new(tokenRecord)); return nil })
		root.Bucket(bktAudit).ForEach(func(k, v []byte) error {
			same("audit "+string(rune('0'+binary.BigEndian.Uint64(k))), v, new(auditRec))
			return nil
		})
		return nil
	})
	if n != 10 {
		t.Fatalf("compared %d records, want 10", n)
	}
}

// fill sets every field reachable from v (a pointer) to a value that is
// not its zero value, so that a conversion that drops a field shows.
func fill(v reflect.Value, seed *int) {
	*seed++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(int64(1_700_000_000+*seed), int64(*seed)).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seed)
			}
		}
	case reflect.String:
		v.SetString("s" + string(rune('a'+*seed%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*seed))
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(uint64(*seed))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), seed)
		fill(s.Index(1), seed)
		v.Set(s)
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// TestRecordsCarryEveryField: each field of authn's stored types survives
// the record types and the codec. A field added to authn without its
// record field fails here.
func TestRecordsCarryEveryField(t *testing.T) {
	seed := 0
	var a authn.Account
	fill(reflect.ValueOf(&a).Elem(), &seed)
	var ra accountRec
	roundTrip(t, accountToRec(&a), &ra)
	carried(t, "Account", *ra.account(), a)

	var d authn.Device
	fill(reflect.ValueOf(&d).Elem(), &seed)
	d.Secret = nil // sealed apart
	var rd deviceRecord
	roundTrip(t, deviceToRec(&d), &rd)
	carried(t, "Device", *rd.device(), d)

	var tok authn.Token
	fill(reflect.ValueOf(&tok).Elem(), &seed)
	tok.Secret = nil
	var rt tokenRecord
	roundTrip(t, tokenToRec(&tok), &rt)
	carried(t, "Token", *rt.token(), tok)

	var e authn.AuditEvent
	fill(reflect.ValueOf(&e).Elem(), &seed)
	var re auditRec
	roundTrip(t, auditToRec(&e), &re)
	carried(t, "AuditEvent", re.event(), e)
}

func carried(t *testing.T, typ string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a field of authn.%s does not reach the database: give it a field with its own CBOR key in its record type "+
			"(authn/store/schema.go) and in both conversions\n got %+v\nwant %+v", typ, got, want)
	}
}

func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	b, err := encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := decode(b, out); err != nil {
		t.Fatal(err)
	}
}
