package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/mfad/mfad/ipc/api"
)

// hub fans events out to /v1/events subscribers, each receiving only the
// events its accept function takes. A subscriber that does not keep up
// loses events (its channel is bounded) rather than slowing the daemon; it
// is told so with an "events_dropped" event, counting only events it
// would have received.
type hub struct {
	mu   sync.Mutex
	subs map[chan api.Event]*subscriber
	n    atomic.Int32 // len(subs), read without the lock
}

type subscriber struct {
	accept  func(api.Event) bool
	dropped int
}

func newHub() *hub { return &hub{subs: map[chan api.Event]*subscriber{}} }

// idle says no one is subscribed: an event need not even be built (every
// sign-in publishes one, and most daemons have no subscriber).
func (h *hub) idle() bool { return h.n.Load() == 0 }

func (h *hub) publish(e api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch, s := range h.subs {
		if !s.accept(e) {
			continue
		}
		if s.dropped > 0 {
			select {
			case ch <- api.Event{Event: "events_dropped", Count: s.dropped}:
				s.dropped = 0
			default:
				s.dropped++
				continue
			}
		}
		select {
		case ch <- e:
		default:
			s.dropped++
		}
	}
}

// Subscribe returns a channel of the events accept takes and a function
// to stop.
func (h *hub) Subscribe(accept func(api.Event) bool) (<-chan api.Event, func()) {
	ch := make(chan api.Event, 64)
	h.mu.Lock()
	h.subs[ch] = &subscriber{accept: accept}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.n.Store(int32(len(h.subs)))
		h.mu.Unlock()
	}
}
