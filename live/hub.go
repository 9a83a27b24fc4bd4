// Package live follows deployments as they run: it keeps the events of
// recent deployments in memory and fans them out to subscribers (the
// status page's event streams), so a subscriber that arrives mid-deploy
// first hears everything from the start, then each event as it happens.
package live

import (
	"sync"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Defaults for a Hub's zero fields.
const (
	DefaultKeep        = 20
	DefaultOutputBytes = 1 << 20
	DefaultBuffer      = 512
)

// Hub is a deploy.Observer that remembers the events of the last Keep
// deployments and tells them to subscribers. Observe never blocks: a
// subscriber whose buffer is full is dropped (its channel is closed before
// the deployment's end), so a slow reader cannot stall a deployment. The
// zero value is ready to use; its methods are safe for concurrent use.
type Hub struct {
	// Keep is how many deployments are remembered (default 20); the
	// oldest finished one is forgotten first.
	Keep int
	// OutputBytes bounds the output lines remembered per deployment
	// (default 1 MiB): beyond it the oldest lines are forgotten. Step,
	// host and deployment events are always kept.
	OutputBytes int
	// Buffer is how many live events a subscriber may fall behind before
	// it is dropped (default 512).
	Buffer int

	mu    sync.Mutex
	deps  map[string]*stream
	order []string // deployment ids, oldest first
}

var _ deploy.Observer = (*Hub)(nil)

// stream is what the hub remembers of one deployment.
type stream struct {
	events      []deploy.Event
	outputBytes int
	ended       bool
	subs        map[*subscriber]struct{}
}

type subscriber struct {
	c     chan deploy.Event
	after int // resumed after this Seq: earlier events are not for it
}

// Ended reports whether ev is a deployment's last event: its status
// changed to one it never leaves.
func Ended(ev deploy.Event) bool {
	return ev.Kind == deploy.EventDeployment && ev.Status != deploy.StatusQueued && ev.Status != deploy.StatusRunning
}

func (h *Hub) keep() int {
	if h.Keep > 0 {
		return h.Keep
	}
	return DefaultKeep
}

func (h *Hub) outputBytes() int {
	if h.OutputBytes > 0 {
		return h.OutputBytes
	}
	return DefaultOutputBytes
}

func (h *Hub) buffer() int {
	if h.Buffer > 0 {
		return h.Buffer
	}
	return DefaultBuffer
}

// Observe remembers ev and hands it to the deployment's subscribers
// without waiting for any of them.
func (h *Hub) Observe(ev deploy.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.deps[ev.DeploymentID]
	if s == nil {
		s = h.addLocked(ev.DeploymentID)
	}
	if s.ended {
		return // a deployment is over once it said so
	}
	s.events = append(s.events, ev)
	if ev.Kind == deploy.EventOutput {
		s.outputBytes += len(ev.Line)
		if s.outputBytes > h.outputBytes() {
			s.trimOutput(h.outputBytes() * 3 / 4)
		}
	}
	for sub := range s.subs {
		if ev.Seq <= sub.after {
			continue
		}
		select {
		case sub.c <- ev:
		default:
			// Too slow: drop it rather than wait. Its channel closes
			// before the end, which tells it so.
			delete(s.subs, sub)
			close(sub.c)
		}
	}
	if Ended(ev) {
		s.ended = true
		for sub := range s.subs {
			close(sub.c)
		}
		s.subs = nil
	}
}

// addLocked starts remembering a deployment, forgetting the oldest
// finished one (or, if none has finished, the oldest) beyond Keep.
func (h *Hub) addLocked(id string) *stream {
	if h.deps == nil {
		h.deps = map[string]*stream{}
	}
	for len(h.order) >= h.keep() {
		victim := 0
		for i, old := range h.order {
			if h.deps[old].ended {
				victim = i
				break
			}
		}
		old := h.deps[h.order[victim]]
		for sub := range old.subs {
			close(sub.c)
		}
		old.subs = nil // cancel finds nothing left to close
		delete(h.deps, h.order[victim])
		h.order = append(h.order[:victim], h.order[victim+1:]...)
	}
	s := &stream{subs: map[*subscriber]struct{}{}}
	h.deps[id] = s
	h.order = append(h.order, id)
	return s
}

// trimOutput forgets the oldest output lines until at most limit bytes of
// output remain; other events stay.
func (s *stream) trimOutput(limit int) {
	kept := s.events[:0]
	for _, ev := range s.events {
		if ev.Kind == deploy.EventOutput && s.outputBytes > limit {
			s.outputBytes -= len(ev.Line)
			continue
		}
		kept = append(kept, ev)
	}
	clear(s.events[len(kept):])
	s.events = kept
}

// Subscribe follows deployment id from the event after sequence number
// after (0: from the start). It returns false when the hub does not know
// the deployment (not started yet, or forgotten). The channel first gives
// the remembered events with Seq > after, then live ones; it is closed
// after the deployment's last event (see Ended), or earlier when the
// subscriber fell behind or the deployment was forgotten: then the last
// event received is not an end. cancel ends the subscription early; call
// it when done (it is safe to call more than once).
func (h *Hub) Subscribe(id string, after int) (events <-chan deploy.Event, cancel func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.deps[id]
	if s == nil {
		return nil, nil, false
	}
	var replay []deploy.Event
	for _, ev := range s.events {
		if ev.Seq > after {
			replay = append(replay, ev)
		}
	}
	sub := &subscriber{c: make(chan deploy.Event, len(replay)+h.buffer()), after: after}
	for _, ev := range replay {
		sub.c <- ev
	}
	if s.ended {
		close(sub.c)
		return sub.c, func() {}, true
	}
	s.subs[sub] = struct{}{}
	cancel = func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
			close(sub.c)
		}
	}
	return sub.c, cancel, true
}
