package mfad_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsCiteExistingFiles: README.md and docs/*.md link to, and name in
// code spans, only files that exist in the repository.
func TestDocsCiteExistingFiles(t *testing.T) {
	docs, _ := filepath.Glob("docs/*.md")
	docs = append(docs, "README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	span := regexp.MustCompile("`((?:daemon|hw|authn|ipc|contrib|systemd|docs)/[A-Za-z0-9_./-]+)`")
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, target)
			}
		}
		for _, m := range span.FindAllStringSubmatch(string(b), -1) {
			p := strings.TrimRight(m[1], ".")
			if strings.ContainsAny(p, "*") {
				continue
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s names %s, which does not exist", doc, p)
			}
		}
	}
}

// TestPamConfigsProfileIsDocumented: the pam-auth-update profile that make
// install ships is the one docs/pam.md shows.
func TestPamConfigsProfileIsDocumented(t *testing.T) {
	profile, err := os.ReadFile("contrib/pam-configs/mfad")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("docs/pam.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```\n"+string(profile)+"```\n") {
		t.Errorf("docs/pam.md does not show contrib/pam-configs/mfad as it is:\n%s", profile)
	}
}
