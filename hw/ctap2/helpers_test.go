package ctap2

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// loadWiredata reads testdata/libfido2-wiredata.txt and returns, for each
// record, the CTAPHID message payload: the reports' 7-byte (initialisation)
// and 5-byte (continuation) headers stripped, cut to the announced length.
// For a CBOR answer the payload is the CTAP2 response frame.
func loadWiredata(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/libfido2-wiredata.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reports := map[string][][]byte{}
	var name string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			name = line[1:strings.IndexByte(line, ']')]
		default:
			b, err := hex.DecodeString(line)
			if err != nil || len(b) != 64 {
				t.Fatalf("%s: bad report %q", name, line)
			}
			reports[name] = append(reports[name], b)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for n, rs := range reports {
		out[n] = reassemble(t, n, rs)
	}
	return out
}

// reassemble undoes CTAPHID fragmentation (CTAP 2.1 §11.2.4): an
// initialisation packet CID(4) CMD(1) BCNT(2) data, then continuation
// packets CID(4) SEQ(1) data.
func reassemble(t testing.TB, name string, rs [][]byte) []byte {
	t.Helper()
	init := rs[0]
	if init[4]&0x80 == 0 {
		t.Fatalf("%s: first report is not an initialisation packet", name)
	}
	n := int(binary.BigEndian.Uint16(init[5:7]))
	msg := append([]byte(nil), init[7:]...)
	for i, r := range rs[1:] {
		if int(r[4]) != i {
			t.Fatalf("%s: continuation %d has sequence %d", name, i, r[4])
		}
		msg = append(msg, r[5:]...)
	}
	if len(msg) < n {
		t.Fatalf("%s: %d payload bytes, header says %d", name, len(msg), n)
	}
	return msg[:n]
}

// loadVectors reads testdata/python-fido2-vectors.txt: "name hex" lines.
func loadVectors(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/python-fido2-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad vector line %q", line)
		}
		v, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = v
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
