package authn

import (
	"context"
	"log/slog"
	"time"
)

// change is one durable write of the domain. Its audit entries are
// appended in the transaction and published (log, event stream) only once
// it commits; a refusal it records commits too, so that a failed attempt
// is counted even though the caller is told no.
type change struct {
	Tx
	s       *Service
	actor   Actor
	now     time.Time
	events  []AuditEvent
	refusal error
}

// write runs fn in a write transaction. fn may run more than once (the
// store's group commit retries a batch without a failed member), so each
// run starts from a fresh change: nothing of a discarded run is published.
// It answers fn's error, else the refusal fn recorded, else nil.
func (s *Service) write(ctx context.Context, actor Actor, fn func(c *change) error) error {
	var c *change
	err := s.store.Update(ctx, func(t Tx) error {
		c = &change{Tx: t, s: s, actor: actor, now: s.now().UTC()}
		return fn(c)
	})
	if err != nil {
		return err
	}
	for _, e := range c.events {
		s.publish(e)
	}
	return c.refusal
}

// audit appends e to the audit log in this transaction.
func (c *change) audit(e AuditEvent) error {
	e.Time = c.now
	e.ActorUID = c.actor.UID
	e.Actor = c.actor.Name
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	if err := c.AppendAudit(&e); err != nil {
		return err
	}
	c.events = append(c.events, e)
	return nil
}

// refuse makes the change answer err once it has committed.
func (c *change) refuse(err error) { c.refusal = err }

// publish mirrors a committed audit entry to the log and the event stream.
func (s *Service) publish(e AuditEvent) {
	if s.log.Enabled(context.Background(), slog.LevelInfo) { // spares boxing the attributes
		s.log.Info("audit", "action", e.Action, "outcome", e.Outcome, "account", e.Account,
			"device", e.Device, "actor_uid", e.ActorUID, "detail", e.Detail)
	}
	if s.onAudit != nil {
		s.onAudit(e)
	}
}
