package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/live"
)

// writer holds the events not written yet and what the log must know of
// each deployment to trim its output as the hub does.
type writer struct {
	mu    sync.Mutex
	deps  map[string]*depState
	order []string // deployment ids, oldest first

	kick    chan struct{} // something to write; buffered 1
	closing chan struct{} // closed by close: write what is left, then stop
	done    chan struct{} // closed when writeLoop has returned
	once    sync.Once
}

// depState is one deployment's events as the writer knows them: a mirror
// of what the live hub keeps (the same trimming), with each event's
// content only until it is written.
type depState struct {
	id, app     string
	entries     []entry
	outputBytes int
	outputLines int
	ended       bool
	written     int // Seq of the last event written
	state       stateJSON
	trimTo      int // Seq up to which output was trimmed since the last write; 0: none
}

// entry is one kept event, or (dropped > 0) the line that stands for
// forgotten output lines there.
type entry struct {
	seq     int
	out     bool // an output line
	bytes   int
	dropped int
	// host, step and time of an output line: a marker takes them from
	// the last line it stands for, as the hub's does.
	host string
	step deploy.Step
	time time.Time
	ev   *deploy.Event // until written
}

func (w *writer) init() {
	w.deps = map[string]*depState{}
	w.kick = make(chan struct{}, 1)
	w.closing = make(chan struct{})
	w.done = make(chan struct{})
}

// Observe takes ev to be written: it returns at once (the writes are
// batched, in a goroutine of the log's own).
func (l *Log) Observe(ev deploy.Event) {
	w := &l.w
	w.mu.Lock()
	s := w.deps[ev.DeploymentID]
	if s == nil {
		s = l.addLocked(ev)
	}
	if s.ended {
		w.mu.Unlock()
		return // as the hub: a deployment is over once it said so
	}
	e := entry{seq: ev.Seq, out: ev.Kind == deploy.EventOutput, host: ev.Host, step: ev.Step, time: ev.Time, ev: &ev}
	if e.out {
		e.bytes = len(ev.Line)
	}
	s.entries = append(s.entries, e)
	if e.out {
		s.outputBytes += e.bytes
		s.outputLines++
		if s.outputBytes > l.opts.OutputBytes || s.outputLines > l.opts.OutputLines {
			s.trim(l.opts.OutputLines*3/4, l.opts.OutputBytes*3/4) // as live.Hub does
		}
	}
	s.ended = live.Ended(ev)
	s.state.note(ev)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// addLocked starts a deployment's state. Unwritten deployments are
// bounded: beyond twice Keep (the database has been away for many
// deployments), the oldest ended one is given up.
func (l *Log) addLocked(ev deploy.Event) *depState {
	w := &l.w
	for len(w.order) >= 2*l.opts.Keep {
		i := slices.IndexFunc(w.order, func(id string) bool { return w.deps[id].ended })
		if i < 0 {
			break // every one still runs: they are bounded by the apps
		}
		l.opts.Logger.Warn("event log: the database has been unreachable for too long: the events of a deployment are not shared with the other deployers",
			"deployment", w.order[i])
		delete(w.deps, w.order[i])
		w.order = slices.Delete(w.order, i, i+1)
	}
	s := &depState{id: ev.DeploymentID, app: ev.App}
	w.deps[s.id] = s
	w.order = append(w.order, s.id)
	return s
}

// trim forgets the oldest output lines until at most lines lines and bytes
// bytes remain, exactly as live.Hub's trimOutput does, and notes how far
// the rows must be trimmed.
func (s *depState) trim(lines, bytes int) {
	kept := s.entries[:0]
	for _, e := range s.entries {
		if !e.out || e.dropped > 0 || (s.outputLines <= lines && s.outputBytes <= bytes) {
			kept = append(kept, e)
			continue
		}
		s.outputLines--
		s.outputBytes -= e.bytes
		s.trimTo = e.seq
		if n := len(kept); n > 0 && kept[n-1].dropped > 0 {
			m := &kept[n-1]
			m.dropped++
			m.seq, m.host, m.step, m.time = e.seq, e.host, e.step, e.time
			continue
		}
		e.dropped, e.bytes, e.ev = 1, 0, nil
		kept = append(kept, e)
	}
	clear(s.entries[len(kept):])
	s.entries = kept
}

func (s *depState) lastSeq() int {
	if len(s.entries) == 0 {
		return 0
	}
	return s.entries[len(s.entries)-1].seq
}

func (s *depState) dirty() bool { return s.trimTo > 0 || s.lastSeq() > s.written }

// pending is one deployment's part of a write, before encoding.
type pending struct {
	s       *depState
	b       batch
	markers []deploy.Event
	events  []deploy.Event
	state   stateJSON
}

// collect takes what is to be written; the events are copied, to be
// encoded without the lock.
func (l *Log) collect() []pending {
	w := &l.w
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []pending
	for _, id := range w.order {
		s := w.deps[id]
		if !s.dirty() {
			continue
		}
		p := pending{s: s, b: batch{id: s.id, app: s.app, trimTo: s.trimTo, lastSeq: s.lastSeq(), ended: s.ended}, state: s.state.clone()}
		for _, e := range s.entries {
			switch {
			case e.dropped > 0 && s.trimTo > 0:
				p.markers = append(p.markers, deploy.Event{Seq: e.seq, Kind: deploy.EventOutput, Time: e.time, DeploymentID: s.id, App: s.app,
					Host: e.host, Step: e.step, Line: live.TruncatedLine(e.dropped, l.opts.OutputLines, l.opts.OutputBytes)})
			case e.dropped == 0 && e.seq > s.written:
				p.events = append(p.events, *e.ev)
			}
		}
		out = append(out, p)
	}
	return out
}

// flush writes what is pending. On success the written events' content
// is let go, and deployments that ended and are written are forgotten.
func (l *Log) flush(ctx context.Context) (ended bool, err error) {
	ps := l.collect()
	if len(ps) == 0 {
		return false, nil
	}
	bs := make([]batch, len(ps))
	for i, p := range ps {
		b := p.b
		if b.markers, err = encodeRows(p.markers, 1); err != nil {
			return false, err
		}
		if b.rows, err = encodeRows(p.events, 0); err != nil {
			return false, err
		}
		if b.state, err = json.Marshal(p.state); err != nil {
			return false, fmt.Errorf("deployment %s: state: %w", b.id, err)
		}
		bs[i] = b
		ended = ended || b.ended
	}
	if err := l.write(ctx, bs, time.Now()); err != nil {
		return false, err
	}
	l.written(ps)
	return ended, nil
}

// encodeRows encodes evs as rows; dropped 1 marks "output truncated"
// lines (any count: the line says how many).
func encodeRows(evs []deploy.Event, dropped int) ([]row, error) {
	rows := make([]row, 0, len(evs))
	for _, ev := range evs {
		raw, err := encodeEvent(ev)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{seq: ev.Seq, kind: ev.Kind, dropped: dropped, event: raw})
	}
	return rows, nil
}

// written notes that ps are in the database.
func (l *Log) written(ps []pending) {
	w := &l.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		s := p.s
		s.written = max(s.written, p.b.lastSeq)
		if s.trimTo == p.b.trimTo {
			s.trimTo = 0 // no trim since: the markers are as written
		}
		for i := range s.entries {
			if s.entries[i].seq <= s.written {
				s.entries[i].ev = nil
			}
		}
		if s.ended && !s.dirty() && w.deps[s.id] == s {
			delete(w.deps, s.id)
			w.order = slices.DeleteFunc(w.order, func(id string) bool { return id == s.id })
		}
	}
}

// writeLoop writes batches until the log closes: it gathers events for
// Batch after the first, writes them, and while the database fails tries
// again, less and less often (at most every 10s), keeping them meanwhile.
func (l *Log) writeLoop() {
	defer l.wg.Done()
	w := &l.w
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			t := time.NewTimer(l.opts.Batch)
			select {
			case <-t.C:
			case <-w.closing:
				t.Stop()
			}
		case <-w.closing:
		}
		closing := isClosed(w.closing)
		l.flushRetrying()
		if closing || l.ctx.Err() != nil {
			return
		}
	}
}

// flushRetrying flushes until it succeeds or the log is closed for good.
func (l *Log) flushRetrying() {
	backoff, failing := time.Duration(0), false
	for {
		ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
		ended, err := l.flush(ctx)
		cancel()
		if err == nil {
			if failing {
				l.opts.Logger.Info("event log: written again: the other deployers see this deployer's deployments live again")
			}
			if ended {
				l.pruneNow()
			}
			return
		}
		if !failing {
			l.opts.Logger.Warn("event log: cannot write: the events wait in memory (the newest output lines of each deployment) and are written when the database is back",
				"error", err)
			failing = true
		}
		backoff = min(max(2*backoff, 200*time.Millisecond), 10*time.Second)
		if isClosed(l.w.closing) {
			backoff = 200 * time.Millisecond // closing: try briefly until close gives up
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return
		}
	}
}

func (l *Log) pruneNow() {
	ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer cancel()
	if err := l.prune(ctx, time.Now().Add(-l.opts.Stale)); err != nil {
		l.opts.Logger.Warn("event log: prune", "error", err)
	}
}

// close makes the writer write what it holds, giving up after timeout.
func (w *writer) close(timeout time.Duration, giveUp context.CancelFunc) {
	w.once.Do(func() { close(w.closing) })
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		giveUp()
		<-w.done
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
