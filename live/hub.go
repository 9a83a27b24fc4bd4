// Package live follows deployments as they run: it keeps the events of
// recent deployments in memory and fans them out to subscribers (the
// status page's event streams), so a subscriber that arrives mid-deploy
// first hears everything from the start, then each event as it happens.
//
// What a deployment's output costs is bounded whatever the hosts print:
// its output lines are bounded in number and in bytes (the oldest give way
// to one "output truncated" line), and subscribers share the events the
// hub holds instead of each getting a copy.
package live

import (
	"fmt"
	"sort"
	"sync"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Defaults for a Hub's zero fields.
const (
	DefaultKeep        = 20
	DefaultOutputBytes = 1 << 20
	DefaultOutputLines = 5000
)

// Hub is a deploy.Observer that remembers the events of the last Keep
// deployments and tells them to subscribers. Observe never waits for a
// subscriber: each reads the shared events at its own pace. The zero
// value is ready to use; its methods are safe for concurrent use.
type Hub struct {
	// Keep is how many deployments are remembered (default 20); the
	// oldest finished one is forgotten first.
	Keep int
	// OutputBytes and OutputLines bound the output lines remembered per
	// deployment (default 1 MiB and 5000: an empty line costs as much to
	// hold as a short one). Beyond either, the oldest lines are
	// forgotten and a line saying how many takes their place. Step, host
	// and deployment events are always kept.
	OutputBytes int
	OutputLines int

	mu    sync.Mutex
	deps  map[string]*stream
	order []string // deployment ids, oldest first
}

var _ deploy.Observer = (*Hub)(nil)

// stream is what the hub remembers of one deployment.
type stream struct {
	events      []entry // by Seq, increasing
	outputBytes int     // of the output lines in events
	outputLines int
	ended       bool
	forgotten   bool
	// wake is closed when events change (or the stream is forgotten);
	// made by the first subscriber that waits.
	wake chan struct{}
}

// entry is one remembered event, or (dropped > 0) the line that stands
// for output lines forgotten there.
type entry struct {
	ev      deploy.Event
	dropped int
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

func (h *Hub) outputLines() int {
	if h.OutputLines > 0 {
		return h.OutputLines
	}
	return DefaultOutputLines
}

// Observe remembers ev and wakes the deployment's subscribers.
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
	s.events = append(s.events, entry{ev: ev})
	if ev.Kind == deploy.EventOutput {
		s.outputBytes += len(ev.Line)
		s.outputLines++
		if s.outputBytes > h.outputBytes() || s.outputLines > h.outputLines() {
			// Down to three quarters: trimming is rare, and each time
			// costs one pass.
			s.trimOutput(h.outputLines()*3/4, h.outputBytes()*3/4)
		}
	}
	s.ended = Ended(ev)
	s.wakeLocked()
}

func (s *stream) wakeLocked() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
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
		old.forgotten = true
		old.wakeLocked()
		delete(h.deps, h.order[victim])
		h.order = append(h.order[:victim], h.order[victim+1:]...)
	}
	s := &stream{}
	h.deps[id] = s
	h.order = append(h.order, id)
	return s
}

// trimOutput forgets the oldest output lines until at most lines lines and
// bytes bytes of output remain. Each run of forgotten lines becomes one
// entry saying how many (with the Seq of the last of them, so that
// events stay in order); other events stay.
func (s *stream) trimOutput(lines, bytes int) {
	kept := s.events[:0]
	for _, e := range s.events {
		if e.ev.Kind != deploy.EventOutput || e.dropped > 0 || (s.outputLines <= lines && s.outputBytes <= bytes) {
			kept = append(kept, e)
			continue
		}
		s.outputLines--
		s.outputBytes -= len(e.ev.Line)
		if n := len(kept); n > 0 && kept[n-1].dropped > 0 {
			kept[n-1].dropped++
			kept[n-1].ev.Seq, kept[n-1].ev.Host, kept[n-1].ev.Step, kept[n-1].ev.Time = e.ev.Seq, e.ev.Host, e.ev.Step, e.ev.Time
			continue
		}
		e.dropped, e.ev.Line = 1, ""
		kept = append(kept, e)
	}
	clear(s.events[len(kept):])
	s.events = kept
}

// event is what a subscriber gets for e.
func (e entry) event(h *Hub) deploy.Event {
	if e.dropped == 0 {
		return e.ev
	}
	ev := e.ev
	ev.Line = TruncatedLine(e.dropped, h.outputLines(), h.outputBytes())
	return ev
}

// TruncatedLine is the output line that stands for dropped forgotten
// lines, under bounds of lines and bytes (the event log, package
// eventlog, writes the same line where the hub has it).
func TruncatedLine(dropped, lines, bytes int) string {
	return fmt.Sprintf("[output truncated: %d earlier lines are not kept here; the live view keeps the newest %d lines and %d KiB of a deployment]",
		dropped, lines, bytes>>10)
}

// Subscribe follows deployment id from the event after sequence number
// after (0: from the start). It returns false when the hub does not know
// the deployment (not started yet, or forgotten). The channel first gives
// the remembered events with Seq > after, then live ones; it is closed
// after the deployment's last event (see Ended), or earlier when the
// deployment was forgotten: then the last event received is not an end.
// A subscriber that reads slowly is neither dropped nor waited for: when
// the lines it has not read yet are forgotten, it gets the line that says
// so instead. cancel ends the subscription early (the channel closes);
// call it when done (it is safe to call more than once).
func (h *Hub) Subscribe(id string, after int) (events <-chan deploy.Event, cancel func(), ok bool) {
	h.mu.Lock()
	s := h.deps[id]
	h.mu.Unlock()
	if s == nil {
		return nil, nil, false
	}
	c := make(chan deploy.Event)
	done := make(chan struct{})
	var once sync.Once
	go h.feed(s, after, c, done) // ends with the subscription: at the end, when forgotten, or on cancel
	return c, func() { once.Do(func() { close(done) }) }, true
}

// feed hands s's events after Seq after to c, one at a time, as the
// subscriber takes them; it closes c when there is nothing more to give.
func (h *Hub) feed(s *stream, after int, c chan<- deploy.Event, done <-chan struct{}) {
	defer close(c)
	for {
		ev, wait, more := h.next(s, after)
		if !more {
			return
		}
		if wait != nil {
			select {
			case <-wait:
				continue
			case <-done:
				return
			}
		}
		select {
		case c <- ev:
			after = ev.Seq
		case <-done:
			return
		}
		if Ended(ev) {
			return
		}
	}
}

// next is the first event of s after Seq after; or a channel that is
// closed when there may be one; or more false when there will be none.
func (h *Hub) next(s *stream, after int) (ev deploy.Event, wait <-chan struct{}, more bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.forgotten {
		return deploy.Event{}, nil, false // its events are the garbage collector's
	}
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].ev.Seq > after })
	switch {
	case i < len(s.events):
		return s.events[i].event(h), nil, true
	case s.ended:
		return deploy.Event{}, nil, false
	}
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return deploy.Event{}, s.wake, true
}
