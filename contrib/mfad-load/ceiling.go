package main

// The ceiling: the least server that does a durable verification's work,
// so that mfad's throughput can be judged as a ratio to what this machine
// allows, measured in the same run (--ceiling). mfad-load runs it as a
// child process of its own binary (--serve-ceiling DIR), serving the same
// request and answer shapes as mfad on a Unix socket:
//
//   - HTTP/1.1 with net/http, the request decoded and the answer encoded
//     with encoding/json (api.Authenticate, api.AuthResult);
//   - the code matched against the token's secret over the same HOTP
//     look-ahead window as mfad's default policy (constant time, authn/totp);
//   - the replay state (the next counter the token may use) read, checked
//     and stored in the bbolt write transaction that accepts the code;
//   - one writer goroutine taking whatever queued while the previous commit
//     flushed (group commit, no timer), every commit flushed (fdatasync).
//
// It has no accounts, policy, authorization, sealing, audit log or step-up
// tokens: what mfad spends on those is what the ratio measures.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
)

// ceilingLookAhead is mfad's default HOTP look-ahead (authn.Policy).
const ceilingLookAhead = 10

var bktTokens = []byte("tokens")

// ceiling is the minimal server.
type ceiling struct {
	db    *bolt.DB
	queue chan *ceilingCall
	batch int
	p     totp.Params
}

type ceilingCall struct {
	account, code string
	ok            chan bool
}

// serveCeiling serves dir/ceiling.sock until SIGTERM, with the tokens of
// dir/seeds ("account hex-secret" lines) at counter 0.
func serveCeiling(dir string, maxBatch int) {
	db, err := bolt.Open(filepath.Join(dir, "ceiling.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		fail("ceiling: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "seeds"))
	if err != nil {
		fail("ceiling: %v", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktTokens)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			account, secret, _ := strings.Cut(sc.Text(), " ")
			sec, err := hex.DecodeString(secret)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(account), binary.BigEndian.AppendUint64(sec, 0)); err != nil {
				return err
			}
		}
		return sc.Err()
	})
	f.Close()
	if err != nil {
		fail("ceiling: seeds: %v", err)
	}
	c := &ceiling{db: db, queue: make(chan *ceilingCall), batch: maxBatch,
		p: totp.Params{Algorithm: totp.SHA1, Digits: 8, Period: 30 * time.Second}}
	go c.writer()

	sock := filepath.Join(dir, "ceiling.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		fail("ceiling: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInfo, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("POST "+api.PathAuthenticate, c.authenticate)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		fail("ceiling: %v", err)
	}
	db.Close()
}

func (c *ceiling) authenticate(w http.ResponseWriter, r *http.Request) {
	var req api.Authenticate
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, `{"code":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	call := &ceilingCall{account: req.Account, code: req.Code, ok: make(chan bool, 1)}
	c.queue <- call
	if !<-call.ok {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"code":"invalid_code","detail":"the code matches no token"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.AuthResult{OK: true, Method: "device", Account: req.Account,
		Device: &api.DeviceRef{ID: req.Account, Type: "hardware-otp"}})
}

// writer is the single writer: it commits whatever queued while the
// previous commit flushed, in one transaction.
func (c *ceiling) writer() {
	for first := range c.queue {
		batch := []*ceilingCall{first}
	drain:
		for len(batch) < c.batch {
			select {
			case x := <-c.queue:
				batch = append(batch, x)
			default:
				break drain
			}
		}
		oks := make([]bool, len(batch))
		err := c.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bktTokens)
			for i, x := range batch {
				v := b.Get([]byte(x.account))
				if len(v) < 8 {
					continue
				}
				next := binary.BigEndian.Uint64(v[len(v)-8:])
				key := &totp.Key{Type: totp.HOTP, Secret: v[:len(v)-8], Params: c.p}
				ctr, ok := key.Match(x.code, totp.Forward(next, ceilingLookAhead))
				if !ok {
					continue
				}
				nv := binary.BigEndian.AppendUint64(append([]byte(nil), v[:len(v)-8]...), ctr+1)
				if err := b.Put([]byte(x.account), nv); err != nil {
					return err
				}
				oks[i] = true
			}
			return nil
		})
		for i, x := range batch {
			x.ok <- err == nil && oks[i]
		}
	}
}

// writeSeeds writes the tokens the ceiling serves.
func writeSeeds(dir string, seeds []tokenSeed) {
	var b strings.Builder
	for _, s := range seeds {
		fmt.Fprintf(&b, "%s %x\n", s.account, s.secret)
	}
	if err := os.WriteFile(filepath.Join(dir, "seeds"), []byte(b.String()), 0o600); err != nil {
		fail("%v", err)
	}
}
