package server

import (
	"fmt"
	"sync"
)

// Limits bound what each uid may hold open at once. Capacity Reserve of
// Max is kept for uid 0, so that sign-ins (PAM runs as root) are served
// whatever other users do.
type Limits struct {
	Max     int // all holders together
	Reserve int // part of Max only uid 0 may use
	PerUID  int // any single non-root uid
}

// slots counts what each uid holds against Limits.
type slots struct {
	lim   Limits
	mu    sync.Mutex
	total int // every holder
	users int // holders other than uid 0
	byUID map[uint32]int
}

func newSlots(l Limits) *slots { return &slots{lim: l, byUID: map[uint32]int{}} }

// acquire takes a slot for uid or says why not.
func (s *slots) acquire(uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if uid == 0 {
		if s.total >= s.lim.Max {
			return fmt.Errorf("all %d slots are in use", s.lim.Max)
		}
	} else {
		if s.byUID[uid] >= s.lim.PerUID {
			return fmt.Errorf("uid %d already holds its %d", uid, s.lim.PerUID)
		}
		if s.users >= s.lim.Max-s.lim.Reserve || s.total >= s.lim.Max {
			return fmt.Errorf("the %d slots open to users are in use", s.lim.Max-s.lim.Reserve)
		}
		s.users++
	}
	s.total++
	s.byUID[uid]++
	return nil
}

func (s *slots) release(uid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if uid != 0 {
		s.users--
	}
	if s.byUID[uid]--; s.byUID[uid] <= 0 {
		delete(s.byUID, uid)
	}
}
