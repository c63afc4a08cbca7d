package fidokey

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mfad/mfad/hw/ctap2"
)

// ErrNoKeys is returned by SelectByTouch when it is given no key.
var ErrNoKeys = errors.New("fidokey: no key")

// SelectByTouch runs op on every key at once, each under its own ctx. The
// first key whose op succeeds (the one the user touched) wins: the others'
// ctx are cancelled, which sends them CTAPHID_CANCEL, and SelectByTouch
// waits for them before returning the winner and its result. A key whose
// op fails drops out (CTAP2_ERR_NO_CREDENTIALS: it holds none of the
// credentials asked for). When every key drops out, the error joins their
// errors, so errors.Is finds ctap2.ErrNoCredentials, a PIN error, etc.
// When ctx ends first, every op is cancelled and ctx's error returned.
func SelectByTouch[T any](ctx context.Context, keys []*Key, op func(context.Context, *Key) (T, error)) (*Key, T, error) {
	var zero T
	if len(keys) == 0 {
		return nil, zero, ErrNoKeys
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		key *Key
		val T
		err error
	}
	results := make(chan result, len(keys))
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := op(ctx, k)
			results <- result{k, v, err}
		}()
	}
	var errs []error
	var win *result
	for range keys {
		r := <-results
		if r.err == nil && win == nil {
			win = &r
			cancel() // the others lose: CTAPHID_CANCEL
			continue
		}
		if r.err != nil && win == nil && ctx.Err() == nil {
			errs = append(errs, r.err)
		}
	}
	wg.Wait()
	if win != nil {
		return win.key, win.val, nil
	}
	if err := ctx.Err(); err != nil && len(errs) < len(keys) {
		return nil, zero, fmt.Errorf("fidokey: select by touch: %w", context.Cause(ctx))
	}
	return nil, zero, fmt.Errorf("fidokey: select by touch: no key answered: %w", errors.Join(errs...))
}

// SelectAssertion is SelectByTouch for GetAssertion: the assertions of the
// key the user touched. Keys without the credentials drop out at once
// (ctap2.ErrNoCredentials).
func SelectAssertion(ctx context.Context, keys []*Key, p GetAssertionParams) (*Key, []*ctap2.GetAssertionResponse, error) {
	return SelectByTouch(ctx, keys, func(ctx context.Context, k *Key) ([]*ctap2.GetAssertionResponse, error) {
		return k.GetAssertion(ctx, p)
	})
}
