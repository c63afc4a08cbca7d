package daemon

import (
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// TestHubDeliversOnlyWhatASubscriberAccepts: each subscriber receives the
// events its filter takes, and a dropped count covers only those.
func TestHubDeliversOnlyWhatASubscriberAccepts(t *testing.T) {
	h := newHub()
	all, stopAll := h.Subscribe(func(api.Event) bool { return true })
	defer stopAll()
	audits, stopAudits := h.Subscribe(func(e api.Event) bool { return e.Event == "audit" })
	defer stopAudits()
	h.publish(api.Event{Event: "key_added"})
	h.publish(api.Event{Event: "audit"})
	if e := <-all; e.Event != "key_added" {
		t.Errorf("all: first event %s", e.Event)
	}
	if e := <-all; e.Event != "audit" {
		t.Errorf("all: second event %s", e.Event)
	}
	if e := <-audits; e.Event != "audit" {
		t.Errorf("audits: first event %s, want audit", e.Event)
	}
	if len(audits) != 0 {
		t.Errorf("audits: %d more events", len(audits))
	}
	// Fill the filtered subscriber's channel with what it takes, then
	// publish many events it does not take: none counts as dropped.
	for range cap(audits) {
		h.publish(api.Event{Event: "audit"})
	}
	for range 10 {
		h.publish(api.Event{Event: "key_removed"})
	}
	for range cap(audits) {
		<-audits
	}
	h.publish(api.Event{Event: "audit"})
	if e := <-audits; e.Event != "audit" {
		t.Errorf("after a full channel of accepted events and rejected ones: %+v, want the audit event (nothing dropped)", e)
	}
}

// TestHubIdleFollowsSubscribers: a sign-in skips building its audit event
// only while no one is subscribed.
func TestHubIdleFollowsSubscribers(t *testing.T) {
	h := newHub()
	if !h.idle() {
		t.Fatal("a new hub is not idle")
	}
	_, stop1 := h.Subscribe(func(api.Event) bool { return true })
	_, stop2 := h.Subscribe(func(api.Event) bool { return true })
	stop1()
	if h.idle() {
		t.Fatal("idle with a subscriber left")
	}
	stop2()
	stop2()
	if !h.idle() {
		t.Fatal("not idle after every subscriber stopped")
	}
}
