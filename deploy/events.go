package deploy

import (
	"bytes"
	"sync"
	"time"
)

// EventKind says what an Event is about.
type EventKind string

const (
	// EventDeployment: the deployment's status changed, or it learnt its
	// commit or release name. Event.Deployment holds a snapshot.
	EventDeployment EventKind = "deployment"
	// EventHost: a host's status changed.
	EventHost EventKind = "host"
	// EventStep: a step started (status running) or ended.
	EventStep EventKind = "step"
	// EventOutput: one line of a step's remote output.
	EventOutput EventKind = "output"
)

// Event is one thing that happened in a deployment, in the order it
// happened: Seq counts from 1 within each deployment, without gaps.
type Event struct {
	Seq          int
	Kind         EventKind
	Time         time.Time
	DeploymentID string
	// App is the deployment's app (Deployment.App).
	App    string
	Status Status // of the deployment, host or step
	Host   string
	Step   Step
	// Duration of a step that ended.
	Duration time.Duration
	// Line is an output line (EventOutput).
	Line string
	// Error of a step or deployment that failed.
	Error string
	// Deployment is a snapshot, on EventDeployment only.
	Deployment *Deployment
}

// Observer hears every event of the deployments it is attached to, one at a
// time and in order for each deployment. Observe runs on the deployment's
// own goroutine: it must return quickly (hand slow work to a goroutine of
// its own) and must not call the deployment's methods other than Snapshot.
type Observer interface {
	Observe(Event)
}

// ObserverFunc makes a function an Observer.
type ObserverFunc func(Event)

// Observe calls f(ev).
func (f ObserverFunc) Observe(ev Event) { f(ev) }

// Observers tells each of its observers every event, in order.
type Observers []Observer

// Observe tells ev to every observer.
func (obs Observers) Observe(ev Event) {
	for _, o := range obs {
		o.Observe(ev)
	}
}

// observation is what a Deployment remembers to tell what changed between
// two updates.
type observation struct {
	seq     int
	status  Status
	commit  string
	release string
	hosts   []hostSeen
}

type hostSeen struct {
	status Status
	steps  []Status
}

// Observe attaches o to the deployment (nil detaches) and tells o where the
// deployment stands now. Attach before the deployment is shared with other
// goroutines; a Deployer attaches its own Observer when it runs a
// deployment that has none.
func (d *Deployment) Observe(o Observer) {
	d.emitMu.Lock()
	defer d.emitMu.Unlock()
	d.mu.Lock()
	d.observer = o
	d.seen = observation{seq: d.seen.seq}
	evs := d.changesLocked(time.Now())
	d.mu.Unlock()
	d.deliver(evs)
}

func (d *Deployment) hasObserver() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observer != nil
}

// changesLocked compares the deployment with what observers were last told
// and returns the events that tell the difference. d.mu is held.
func (d *Deployment) changesLocked(now time.Time) []Event {
	if d.observer == nil {
		return nil
	}
	var evs []Event
	add := func(ev Event) {
		d.seen.seq++
		ev.Seq, ev.DeploymentID, ev.App = d.seen.seq, d.ID, d.App
		if ev.Time.IsZero() {
			ev.Time = now
		}
		evs = append(evs, ev)
	}
	s := &d.seen
	for i, h := range d.Hosts {
		if i >= len(s.hosts) {
			s.hosts = append(s.hosts, hostSeen{})
		}
		hs := &s.hosts[i]
		name := h.Host.String()
		// Step events come before the host's own: a host turns green
		// after its last step ended.
		for j, st := range h.Steps {
			if j >= len(hs.steps) {
				hs.steps = append(hs.steps, "")
			}
			if hs.steps[j] == st.Status {
				continue
			}
			if hs.steps[j] == "" && st.Status != StatusRunning {
				// Started and ended between two looks: tell both.
				add(Event{Kind: EventStep, Status: StatusRunning, Host: name, Step: st.Name, Time: st.Started})
			}
			ev := Event{Kind: EventStep, Status: st.Status, Host: name, Step: st.Name}
			if st.Status == StatusRunning {
				ev.Time = st.Started
			} else {
				ev.Duration = st.Duration
				if st.Err != nil {
					ev.Error = st.Err.Error()
				}
			}
			add(ev)
			hs.steps[j] = st.Status
		}
		if hs.status != h.Status {
			add(Event{Kind: EventHost, Status: h.Status, Host: name})
			hs.status = h.Status
		}
	}
	if len(d.Hosts) < len(s.hosts) {
		// A deployment's host list is replaced when it starts.
		s.hosts = s.hosts[:len(d.Hosts)]
	}
	if s.status != d.Status || s.commit != d.Release.Commit || s.release != d.ReleaseName {
		ev := Event{Kind: EventDeployment, Status: d.Status, Deployment: d.snapshotLocked()}
		if d.Err != nil {
			ev.Error = d.Err.Error()
		}
		add(ev)
		s.status, s.commit, s.release = d.Status, d.Release.Commit, d.ReleaseName
	}
	return evs
}

// deliver hands evs to the observer; d.emitMu is held, d.mu is not.
func (d *Deployment) deliver(evs []Event) {
	if len(evs) == 0 {
		return
	}
	d.mu.Lock()
	o := d.observer
	d.mu.Unlock()
	if o == nil {
		return
	}
	for _, ev := range evs {
		o.Observe(ev)
	}
}

// outputLine tells observers one line of a step's output.
func (d *Deployment) outputLine(host string, step Step, line string) {
	d.emitMu.Lock()
	defer d.emitMu.Unlock()
	d.mu.Lock()
	if d.observer == nil {
		d.mu.Unlock()
		return
	}
	d.seen.seq++
	ev := Event{Seq: d.seen.seq, Kind: EventOutput, Time: time.Now(), DeploymentID: d.ID, App: d.App, Host: host, Step: step, Line: line}
	d.mu.Unlock()
	d.deliver([]Event{ev})
}

// maxLine bounds one output line as observers see it; longer lines are cut.
const maxLine = 4 << 10

// lineWriter splits what a step writes into lines and tells each to the
// deployment's observers. A line cut by the end of a write waits for the
// next write; flush tells what remains.
type lineWriter struct {
	dep   *Deployment
	host  string
	step  Step
	lines lineSplitter
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.lines.write(p, func(l []byte) { w.emit(bytes.TrimSuffix(l, []byte("\n"))) }, func(b []byte) int {
		w.emit(b)
		return len(b)
	})
	return len(p), nil
}

func (w *lineWriter) flush() { w.lines.flush(w.emit) }

// lineSplitter cuts a stream into lines for a writer: safe for concurrent
// writes, holding at most about maxLine of a line that has not ended.
type lineSplitter struct {
	mu  sync.Mutex
	buf []byte
}

// write adds p and calls line for each whole line (with its newline). Of
// a rest longer than maxLine, long is given all and says how much of it
// it took.
func (s *lineSplitter) write(p []byte, line func([]byte), long func([]byte) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		line(s.buf[:i+1])
		s.buf = s.buf[i+1:]
	}
	if len(s.buf) > maxLine {
		n := long(s.buf)
		s.buf = append(s.buf[:0], s.buf[n:]...)
	}
}

// flush gives line what remains, if anything.
func (s *lineSplitter) flush(line func([]byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) > 0 {
		line(s.buf)
		s.buf = nil
	}
}

func (w *lineWriter) emit(b []byte) {
	b = bytes.TrimRight(b, "\r")
	if len(b) > maxLine {
		b = b[:maxLine]
	}
	w.dep.outputLine(w.host, w.step, string(b))
}
