package store

import (
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
)

// Records are CBOR (schema v3 on; v1 and v2 wrote JSON) of the record
// types in schema.go, whose explicit keys keep the names v3 first wrote,
// at a third of encoding/json's decoding cost on the sign-in path. Decoding is
// bounded like any input, since a damaged file is input too.
var (
	recEnc cbor.EncMode
	recDec cbor.DecMode
)

func init() {
	var err error
	if recEnc, err = (cbor.EncOptions{Time: cbor.TimeRFC3339Nano}).EncMode(); err != nil {
		panic(err)
	}
	if recDec, err = (cbor.DecOptions{MaxNestedLevels: 16, MaxArrayElements: 4096, MaxMapPairs: 4096}).DecMode(); err != nil {
		panic(err)
	}
}

func encode(v any) ([]byte, error) { return recEnc.Marshal(v) }

func decode(b []byte, v any) error { return recDec.Unmarshal(b, v) }

// reencodeJSON rewrites every value of b (and of its nested buckets) from
// JSON to CBOR, decoding into a fresh value from newRec.
func reencodeJSON(b *bolt.Bucket, newRec func() any) error {
	type kv struct{ k, v []byte }
	var todo []kv
	var nested [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			nested = append(nested, append([]byte(nil), k...))
			return nil
		}
		rec := newRec()
		if err := json.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		out, err := encode(rec)
		if err != nil {
			return err
		}
		todo = append(todo, kv{append([]byte(nil), k...), out})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range todo {
		if err := b.Put(e.k, e.v); err != nil {
			return err
		}
	}
	for _, k := range nested {
		if err := reencodeJSON(b.Bucket(k), newRec); err != nil {
			return err
		}
	}
	return nil
}
