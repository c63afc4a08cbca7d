package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/store/storetest"
)

// hold runs an update on st that waits until release is called, so that
// the updates started meanwhile queue up for one batch: release returns
// once n of them are queued.
func hold(t *testing.T, st *Store, n int) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- st.Update(context.Background(), func(authn.Tx) error {
			select {
			case <-started:
			default:
				close(started)
			}
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		t.Helper()
		for st.queued() < n {
			time.Sleep(time.Millisecond) // waiting for the queue, not timing it
		}
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("the holding update: %v", err)
		}
	}
}

func openStore(t *testing.T, dsn, host string) *Store {
	t.Helper()
	st, err := openOpts(dsn, storetest.Key(), Options{Host: host, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func counterDevice(account string) *authn.Device {
	return &authn.Device{ID: "d1", Account: account, Type: authn.DeviceHardwareOTP, State: authn.StateActive,
		Secret: []byte("0123456789abcdefghij"), OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Event: true}}
}

// seed makes the accounts names, each with one counter device.
func seed(t *testing.T, st *Store, names ...string) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx authn.Tx) error {
		for _, name := range names {
			if err := tx.PutAccount(&authn.Account{Name: name, Kind: authn.KindMember}); err != nil {
				return err
			}
			if err := tx.PutDevice(counterDevice(name)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBatchSharesOneCommit: updates queued behind a running one share the
// next transaction. In it, each function sees the writes of the functions
// before it (the accounts read for the whole batch with BEGIN included),
// a function that fails is taken out with its own error while the others'
// writes commit, and an account that does not exist is not found.
func TestBatchSharesOneCommit(t *testing.T) {
	st := openStore(t, pgtest.DB(t), "ws-a")
	ctx := context.Background()
	seed(t, st, "alice", "bob")
	c0, u0 := st.Stats()

	const n = 24
	release := hold(t, st, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Update(ctx, func(tx authn.Tx) error {
				name := []string{"alice", "bob"}[i%2]
				if i == 5 {
					name = "nobody"
				}
				if _, err := tx.Account(name); err != nil {
					return err
				}
				devs, err := tx.Devices(name)
				if err != nil {
					return err
				}
				d := devs[0]
				d.OTP.LastCounter++
				d.OTP.Used = true
				if err := tx.PutDevice(&d); err != nil {
					return err
				}
				if err := tx.AppendAudit(&authn.AuditEvent{Time: time.Now(), Action: "count", Outcome: "ok", Account: name,
					Detail: fmt.Sprint(d.OTP.LastCounter)}); err != nil {
					return err
				}
				if i%7 == 3 {
					return fmt.Errorf("refused %d", i)
				}
				return nil
			})
		}()
	}
	release()
	wg.Wait()

	okByAccount := map[string]uint64{}
	for i, err := range errs {
		switch {
		case i == 5:
			if !errors.Is(err, authn.ErrNotFound) {
				t.Errorf("update %d on a missing account: %v, want not found", i, err)
			}
		case i%7 == 3:
			if err == nil || err.Error() != fmt.Sprintf("refused %d", i) {
				t.Errorf("update %d: %v, want its own error", i, err)
			}
		case err != nil:
			t.Errorf("update %d: %v", i, err)
		default:
			okByAccount[[]string{"alice", "bob"}[i%2]]++
		}
	}
	committed := uint64(1) // the holding update
	for _, c := range okByAccount {
		committed += c
	}
	c1, u1 := st.Stats()
	if c1-c0 != 2 || u1-u0 != committed {
		t.Errorf("%d commits carried %d updates, want 2 commits (the holding update, then one batch) carrying %d", c1-c0, u1-u0, committed)
	}
	if err := st.View(func(tx authn.Tx) error {
		for name, want := range okByAccount {
			d, err := tx.Device(name, "d1")
			if err != nil {
				return err
			}
			if d.OTP.LastCounter != want {
				t.Errorf("%s's counter = %d, want %d (one step per committed update, each seeing the one before)", name, d.OTP.LastCounter, want)
			}
		}
		events, err := tx.Audit(0, 100)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range events {
			k := e.Account + "/" + e.Detail
			if seen[k] {
				t.Errorf("audit entry %s twice", k)
			}
			seen[k] = true
		}
		if len(events) != int(u1-u0-1) {
			t.Errorf("%d audit entries, want %d (one per committed update of the batch)", len(events), u1-u0-1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBatchesRaceAcrossHosts: on two hosts over one database, 2 x 32
// sign-ins with the same valid code queue behind a running update on each
// host and run as one batch per host, the two batches racing: the code is
// accepted exactly once, every other sign-in is refused as a spent code,
// round after round.
func TestBatchesRaceAcrossHosts(t *testing.T) {
	a, b, clk := twoHosts(t, authn.Policy{MaxFailures: 100000, LockoutAfter: 100000})
	_, secret := enroll(t, a, clk)
	for round := range 10 {
		clk.Add(30 * time.Second)
		c := code(clk, secret, 0)
		ca0, _ := a.st.Stats()
		cb0, _ := b.st.Stats()
		releaseA, releaseB := hold(t, a.st, 32), hold(t, b.st, 32)
		n := race(t, round, []*host{a, b}, 64, c, func() {
			var rw sync.WaitGroup
			for _, release := range []func(){releaseA, releaseB} {
				rw.Add(1)
				go func() { defer rw.Done(); release() }()
			}
			rw.Wait()
		})
		if n != 1 {
			t.Fatalf("round %d: the code was accepted %d times across two hosts, want once", round, n)
		}
		ca1, _ := a.st.Stats()
		cb1, _ := b.st.Stats()
		// The holding update, the batch of 32 (more when a serialization
		// failure splits it): far fewer commits than sign-ins.
		if ca1-ca0 > 16 || cb1-cb0 > 16 {
			t.Errorf("round %d: %d and %d commits for 32 sign-ins each: the sign-ins did not share commits", round, ca1-ca0, cb1-cb0)
		}
	}
}

// TestLookupsScanIndexes: on tables small enough that the planner would
// rather read them whole (a sequential scan locks the whole table for
// SERIALIZABLE's conflict detection, a bitmap scan whole pages), mfad's
// sessions read an account and its devices, or a batch's, by index.
func TestLookupsScanIndexes(t *testing.T) {
	st := openStore(t, pgtest.DB(t), "ws-a")
	ctx := context.Background()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	seed(t, st, names...)
	if _, err := st.Pool().Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	names = []string{"u1", "u7", "u12"}
	for _, q := range []struct {
		sql string
		arg any
	}{{sqlAccount, "u3"}, {sqlDevices, "u3"}, {sqlAccountsAny, names}, {sqlDevicesAny, names}} {
		rows, err := st.Pool().Query(ctx, "EXPLAIN "+q.sql, q.arg)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "Index Scan") || strings.Contains(text, "Seq Scan") || strings.Contains(text, "Bitmap") {
			t.Errorf("%s:\n%s\nwant an index scan", q.sql, text)
		}
	}
}

// TestGatheredWritesKeepTheirOrder: device rows and audit entries waiting
// to go out as one statement each still land as written: the last write
// of a device wins, and a device written before an account is deleted
// goes with it, while one written after stays.
func TestGatheredWritesKeepTheirOrder(t *testing.T) {
	st := openStore(t, pgtest.DB(t), "ws-a")
	ctx := context.Background()
	seed(t, st, "alice", "bob")
	withCounter := func(account, id string, c uint64) *authn.Device {
		d := counterDevice(account)
		d.ID, d.OTP.LastCounter, d.OTP.Used = id, c, true
		return d
	}
	if err := st.Update(ctx, func(tx authn.Tx) error {
		if _, err := tx.Account("alice"); err != nil {
			return err
		}
		for _, d := range []*authn.Device{withCounter("alice", "d2", 1), withCounter("bob", "d1", 4), withCounter("alice", "d2", 2),
			withCounter("bob", "d1", 5)} {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		if err := tx.DeleteAccount("alice"); err != nil {
			return err
		}
		if err := tx.PutAccount(&authn.Account{Name: "alice", Kind: authn.KindMember}); err != nil {
			return err
		}
		for _, d := range []*authn.Device{withCounter("alice", "d3", 7), withCounter("alice", "d3", 9)} {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		return tx.AppendAudit(&authn.AuditEvent{Time: time.Now(), Action: "order", Outcome: "ok", Account: "alice"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.View(func(tx authn.Tx) error {
		devs, err := tx.Devices("alice")
		if err != nil {
			return err
		}
		if len(devs) != 1 || devs[0].ID != "d3" || devs[0].OTP.LastCounter != 9 {
			t.Errorf("alice's devices = %+v, want d3 alone at counter 9", devs)
		}
		if d, err := tx.Device("bob", "d1"); err != nil || d.OTP.LastCounter != 5 {
			t.Errorf("bob's d1 = %+v, %v, want counter 5", d, err)
		}
		events, err := tx.Audit(0, 10)
		if err != nil || len(events) != 1 || events[0].Action != "order" || events[0].Seq == 0 {
			t.Errorf("audit = %+v, %v, want the one entry", events, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
