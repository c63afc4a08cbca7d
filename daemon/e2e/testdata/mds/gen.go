//go:build ignore

// gen writes the MDS3 fixtures of the e2e tests (run from this directory:
// go run gen.go). The blobs are JWTs signed with ES256 by a certificate of
// root.pem, valid from 2026 to 2126; other-root.pem signs nothing.
//
//	blob.jwt         the software key's AAGUID and a YubiKey's, described
//	bad-entry.jwt    signed, but an entry's aaguid is not one
//	not-json.jwt     signed, but the payload is not JSON
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"time"
)

var (
	notBefore = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2126, 1, 1, 0, 0, 0, 0, time.UTC)
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func cert(tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
	tmpl.SerialNumber = must(rand.Int(rand.Reader, big.NewInt(1<<62)))
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	if parent == nil {
		parent = tmpl
	}
	return must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv))))
}

func root(name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	k := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	c := cert(&x509.Certificate{Subject: pkix.Name{CommonName: name, Organization: []string{"mfad tests"}},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &k.PublicKey, k)
	os.WriteFile(name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644)
	return c, k
}

func main() {
	rootCert, rootKey := root("root")
	root("other-root")
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	signer := cert(&x509.Certificate{Subject: pkix.Name{CommonName: "mfad test MDS signer", Organization: []string{"mfad tests"}},
		KeyUsage: x509.KeyUsageDigitalSignature}, rootCert, &key.PublicKey, rootKey)

	jwt := func(file string, payload []byte) {
		h := must(json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(signer.Raw)}}))
		signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload)
		d := sha256.Sum256([]byte(signed))
		r, s := must2(ecdsa.Sign(rand.Reader, key, d[:]))
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		os.WriteFile(file, []byte(signed+"."+base64.RawURLEncoding.EncodeToString(sig)+"\n"), 0o644)
	}
	entry := func(aaguid, desc string) map[string]any {
		return map[string]any{"aaguid": aaguid,
			"metadataStatement": map[string]any{"description": desc, "attestationRootCertificates": []string{}},
			"statusReports":     []map[string]string{{"status": "FIDO_CERTIFIED", "effectiveDate": "2026-01-01"}}}
	}
	blob := func(entries ...map[string]any) []byte {
		return must(json.Marshal(map[string]any{"legalHeader": "mfad test metadata, not FIDO's", "no": 1, "nextUpdate": "2126-01-01", "entries": entries}))
	}
	jwt("blob.jwt", blob(entry("6d666164-2d65-6d75-2d73-6f66746b6579", "mfad software key (test metadata)"),
		entry("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5 Series (test metadata)")))
	jwt("bad-entry.jwt", blob(entry("not-an-aaguid", "garbled")))
	jwt("not-json.jwt", []byte(`{"entries": [`))
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}
