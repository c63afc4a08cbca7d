package ctaphid

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Conn carries HID reports to and from a FIDO device: one 64-byte report per call, without
// the report-id byte (the driver adds and strips it). ReadReport must return when ctx ends.
// A Conn is used by one reader and one writer at a time.
type Conn interface {
	ReadReport(ctx context.Context) ([]byte, error)
	WriteReport(ctx context.Context, report []byte) error
}

// ErrClosed is returned by a [Pipe] end once either end has been closed.
var ErrClosed = errors.New("ctaphid: connection closed")

// pipeDepth is how many reports each direction of a Pipe buffers, like the hidraw driver's
// per-reader queue. A writer blocks (until its ctx ends) while the queue is full.
const pipeDepth = 64

// PipeConn is one end of a [Pipe].
type PipeConn struct {
	in, out chan []byte
	done    chan struct{} // shared by both ends
	once    *sync.Once
}

// Pipe returns an in-memory connected pair of Conns: reports written to one end are read
// from the other, in order. Closing either end makes reads and writes on both return
// [ErrClosed]. It attaches a device-side [Server] to a host-side [Channel] in-process.
func Pipe() (host, device *PipeConn) {
	h2d := make(chan []byte, pipeDepth)
	d2h := make(chan []byte, pipeDepth)
	done := make(chan struct{})
	once := new(sync.Once)
	return &PipeConn{in: d2h, out: h2d, done: done, once: once},
		&PipeConn{in: h2d, out: d2h, done: done, once: once}
}

// ReadReport returns the next report from the other end.
func (p *PipeConn) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case <-p.done:
		return nil, ErrClosed
	default:
	}
	select {
	case r := <-p.in:
		return r, nil
	case <-p.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("ctaphid: read report: %w", ctx.Err())
	}
}

// WriteReport sends a copy of a 64-byte report to the other end.
func (p *PipeConn) WriteReport(ctx context.Context, report []byte) error {
	if len(report) != ReportSize {
		return fmt.Errorf("%w: %d bytes", ErrReportSize, len(report))
	}
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	r := append([]byte{}, report...)
	select {
	case p.out <- r:
		return nil
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("ctaphid: write report: %w", ctx.Err())
	}
}

// Close closes the pipe; it is safe to call more than once and from either end.
func (p *PipeConn) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
