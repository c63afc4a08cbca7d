package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// The battery's flags refuse destructive checks on every key unless said
// twice, before anything reaches mfad.
func TestKeyCheckUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"key", "check"}, exitUsage},
		{[]string{"key", "check", "k1", "--all"}, exitUsage},
		{[]string{"key", "check", "--all", "--destructive"}, exitUsage},
		{[]string{"key", "check", "k1", "--destructive-all"}, exitUsage},
		{[]string{"key", "check", "k1", "--report", "xml"}, exitUsage},
		{[]string{"key", "check", "--all", "--destructive", "--destructive-all", "--yes"}, exitUnreachable},
		{[]string{"key", "check", "k1"}, exitUnreachable},
		{[]string{"key", "inventory"}, exitUsage},
		{[]string{"key", "inventory", "--csv"}, exitUnreachable},
		{[]string{"key", "watch"}, exitUsage},
		{[]string{"key", "watch", "--check", "--report", "junit"}, exitUsage},
		{[]string{"key", "watch", "--check", "--report", "csv", "--output", "x"}, exitUsage},
		{[]string{"key", "watch", "--check"}, exitUnreachable},
	} {
		_, errs, code := runCLI(t, tc.args...)
		if code != tc.want {
			t.Errorf("mfactl %v: exit %d, want %d (%s)", tc.args, code, tc.want, errs)
		}
	}
}

func TestPickKeys(t *testing.T) {
	keys := []api.Key{{ID: "hidraw0", Serial: "A1"}, {ID: "hidraw1", Serial: "B2"}, {ID: "emu-x", Serial: "hidraw0"}}
	if ids, err := pickKeys(keys, []string{"B2", "emu-x"}, false); err != nil || strings.Join(ids, ",") != "hidraw1,emu-x" {
		t.Errorf("by serial and id: %v %v", ids, err)
	}
	if _, err := pickKeys(keys, []string{"hidraw0"}, false); err == nil {
		t.Error("a name that is one key's id and another's serial was taken")
	}
	if _, err := pickKeys(keys, []string{"nope"}, false); err == nil {
		t.Error("an unknown key was taken")
	}
	if ids, _ := pickKeys(keys, nil, true); len(ids) != 3 {
		t.Errorf("--all: %v", ids)
	}
}

func TestReportName(t *testing.T) {
	for _, tc := range []struct {
		k    api.Key
		want string
	}{
		{api.Key{ID: "hidraw3", Serial: "CC 12/34"}, "CC_12_34"},
		{api.Key{ID: "usb:1-2:1.0"}, "usb_1-2_1.0"},
		{api.Key{ID: "emu-a", Serial: "../../etc"}, ".._.._etc"},
	} {
		if got := reportName(tc.k); got != tc.want {
			t.Errorf("reportName(%+v) = %q, want %q", tc.k, got, tc.want)
		}
	}
}

func sampleReports() []api.KeyCheckReport {
	return []api.KeyCheckReport{{
		Key: api.KeyIdentity{ID: "hidraw3", Driver: "native", Path: "/dev/hidraw3", VendorID: 0x1050, ProductID: 0x0407,
			Manufacturer: "Yubico", Product: "YubiKey OTP+FIDO+CCID", Serial: "12345678", AAGUID: "cb69481e-8ff7-4039-93ec-0a2729a154a8",
			AAGUIDDescription: "YubiKey 5 Series", Firmware: 328707, DeviceVersion: "5.4.3", Versions: []string{"U2F_V2", "FIDO_2_0"}},
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationMS: 2500, Passed: 1, Failed: 1, Skipped: 1,
		Results: []api.KeyCheckResult{
			{ID: "ctaphid.ping", Name: "PING echoes", Section: "CTAP 2.1 §11.2.9.1.4", Result: "pass", Observed: []string{"PING 0 bytes: echoed"}, DurationMS: 12},
			{ID: "cred.counter", Name: "The signature counter increases", Section: "CTAP 2.1 §6.2.2", Result: "fail", Reason: "the counter did not increase <&>", Observed: []string{"counter before 10, then 6 and 7"}},
			{ID: "reset", Name: "Reset", Section: "CTAP 2.1 §6.6", Result: "skip", Reason: "destructive"},
		},
	}}
}

// The JUnit report has one testsuite per key carrying its identity, one
// testcase per check, failures and skips where CI systems look for them.
func TestJUnitReport(t *testing.T) {
	var b bytes.Buffer
	if err := writeJUnit(&b, sampleReports()); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.Tests != 3 || got.Failures != 1 || got.Skipped != 1 || len(got.Suites) != 1 {
		t.Fatalf("totals %+v", got)
	}
	s := got.Suites[0]
	if s.Name != "Yubico YubiKey OTP+FIDO+CCID 12345678 (hidraw3)" || len(s.Cases) != 3 || s.Time != "2.500" {
		t.Errorf("suite %q, %d cases, time %s", s.Name, len(s.Cases), s.Time)
	}
	props := map[string]string{}
	for _, p := range s.Properties {
		props[p.Name] = p.Value
	}
	for k, v := range map[string]string{"vendor_id": "1050", "product_id": "0407", "serial": "12345678", "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8",
		"aaguid_description": "YubiKey 5 Series", "firmware": "328707", "manufacturer": "Yubico"} {
		if props[k] != v {
			t.Errorf("property %s = %q, want %q", k, props[k], v)
		}
	}
	if c := s.Cases[1]; c.Failure == nil || c.Failure.Message != "the counter did not increase <&>" || c.Skipped != nil {
		t.Errorf("failed case %+v", c)
	}
	if c := s.Cases[2]; c.Skipped == nil || c.Skipped.Message != "destructive" || c.Failure != nil {
		t.Errorf("skipped case %+v", c)
	}
	if c := s.Cases[0]; c.Failure != nil || c.Skipped != nil || !strings.Contains(c.Name, "§11.2.9.1.4") || c.SystemOut != "PING 0 bytes: echoed" {
		t.Errorf("passed case %+v", c)
	}
}

func TestInventoryCSV(t *testing.T) {
	three := 3
	keys := []api.Key{
		{ID: "hidraw3", Driver: "native", VendorID: 0x1050, ProductID: 0x0407, Manufacturer: "Yubico, Inc.", Serial: "1", AAGUID: "x",
			Versions: []string{"U2F_V2", "FIDO_2_0"}, Options: map[string]bool{"clientPin": true}, PINRetries: &three, Status: "ok"},
		{ID: "emu-a", Driver: "emulator", EmulatorID: "a", Status: "failing"},
	}
	var b bytes.Buffer
	if err := writeInventoryCSV(&b, keys); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("%v %q", err, rows)
	}
	if strings.Join(rows[0], ",") != strings.Join(inventoryHeader, ",") {
		t.Errorf("header %v", rows[0])
	}
	if r := rows[1]; r[3] != "1050" || r[5] != "Yubico, Inc." || r[9] != "U2F_V2 FIDO_2_0" || r[10] != "true" || r[11] != "3" {
		t.Errorf("row %q", r)
	}
	if r := rows[2]; r[10] != "" || r[11] != "" || r[12] != "failing" || r[13] != "a" {
		t.Errorf("row %q", r)
	}
}

// The table names the key with its identity and each check with its
// verdict, section and reason; JSON is the documented report file.
func TestCheckReportTableAndJSON(t *testing.T) {
	var out bytes.Buffer
	a := &app{out: &out, errOut: &bytes.Buffer{}}
	if err := a.writeCheckReport(sampleReports(), "", ""); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, want := range []string{"key hidraw3", "serial 12345678", "1050:0407", "(YubiKey 5 Series)", "cred.counter", "FAIL", "§6.2.2",
		"the counter did not increase <&>", "reset", "SKIP", "1 passed, 1 failed, 1 skipped"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	out.Reset()
	if err := a.writeCheckReport(sampleReports(), "json", ""); err != nil {
		t.Fatal(err)
	}
	var file checkReportFile
	if err := json.Unmarshal(out.Bytes(), &file); err != nil || file.Version != 1 || len(file.Reports) != 1 || file.Reports[0].Results[1].Reason != "the counter did not increase <&>" {
		t.Errorf("json report (%v): %s", err, out.String())
	}
}
