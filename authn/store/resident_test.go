package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mfad/mfad/authn"
)

// mappedKB is how much of the process's mapping of path is resident (kB).
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			total += n
		}
	}
	return total
}

// appendAudit commits the audit entries from..from+n-1, of about 200 bytes
// each, in commits of 100.
func appendAudit(t *testing.T, s *Store, from, n int) {
	t.Helper()
	for done := 0; done < n; done += 100 {
		err := s.Update(context.Background(), func(tx authn.Tx) error {
			for i := range 100 {
				e := &authn.AuditEvent{Action: "authenticate", Outcome: "ok", Account: fmt.Sprintf("account-%06d", from+done+i),
					Device: "dev-0123456789abcdef", Detail: strings.Repeat("d", 100)}
				if err := tx.AppendAudit(e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The pages that transactions read through bbolt's mapping stop being the
// process's once commits wrote enough: what stays resident is what was read since,
// not the whole file, and every record reads the same.
func TestWriterReleasesMappedPages(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{AuditRetention: 1 << 20})
	appendAudit(t, s, 0, 30000) // ~7 MB of audit pages
	readAll := func() {
		t.Helper()
		err := s.View(func(tx authn.Tx) error {
			all, err := tx.Audit(0, 1<<20)
			if err != nil {
				return err
			}
			for i, e := range all {
				if e.Seq != uint64(i+1) || e.Account != fmt.Sprintf("account-%06d", i) || len(e.Detail) != 100 {
					return fmt.Errorf("entry %d reads %+v", i, e)
				}
			}
			if len(all) < 30000 {
				return fmt.Errorf("%d entries", len(all))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	readAll()
	if kb := mappedKB(t, s.Path()); kb < 4000 {
		t.Fatalf("after reading the whole log %d kB of the database are resident, want most of it", kb)
	}

	// Write while others read: the writer releases the mapping under their
	// feet, and they read what they should.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				readAll()
			}
		}()
	}
	appendAudit(t, s, 30000, 20000) // ~4.8 MB: more than releasePages
	close(stop)
	wg.Wait()
	s.releasedAt -= releasePages  // no writer: the next commit releases
	appendAudit(t, s, 50000, 100) // and has done so when it returns
	if kb := mappedKB(t, s.Path()); kb > 1500 {
		t.Fatalf("%d kB of the database stay resident after the release, want what was read since", kb)
	}
	readAll()
}
