package history

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// writeTimeout bounds one write, so that a stuck database cannot hold up
// Close (and the exit of the CLI) for long.
const writeTimeout = 30 * time.Second

// Recorder writes the deployments it hears of into a Store. Observe only
// queues the event (it runs on the deployment's goroutine); one writer
// goroutine, started by Start and ended by Close, writes them in order. A
// failed write is logged and never fails a deployment.
//
// A deployment whose write failed (the database down or unreachable) is
// saved again whole, from its latest snapshot: every RetryEvery, before
// any later event of it, and once more at Close. So a deployment that
// ended while the database was away is recorded as it ended when the
// database is back, and its rows are never older than what was written
// before.
type Recorder struct {
	store Store
	log   *slog.Logger
	owner Owner
	// PruneEvery, when set before Start, runs Store.Prune that often
	// (serve: daily).
	PruneEvery time.Duration
	// RetryEvery is how often a deployment whose write failed is saved
	// again; 0 means every 5 seconds. Set it before Start.
	RetryEvery time.Duration

	mu      sync.Mutex
	pending []deploy.Event
	closed  bool
	started bool
	wake    chan struct{}
	done    chan struct{}
	stop    chan struct{}

	// tracked follows the step list of each unfinished deployment, so that
	// a step event finds its row (steps are numbered per host).
	tracked map[string]*tracking
	// unsaved holds, per deployment whose write failed, the snapshot to
	// save again; owned by the writer, as tracked.
	unsaved map[string]*deploy.Deployment
}

// defaultRetryEvery is RetryEvery's default.
const defaultRetryEvery = 5 * time.Second

var _ deploy.Observer = (*Recorder)(nil)

// NewRecorder returns a recorder that writes to st and logs its failures
// to log. Call Start before the first deployment and Close after the last.
func NewRecorder(st Store, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{store: st, log: log, owner: st.Owner(), wake: make(chan struct{}, 1),
		done: make(chan struct{}), stop: make(chan struct{}), tracked: map[string]*tracking{},
		unsaved: map[string]*deploy.Deployment{}}
}

// Observe queues ev for the writer. Output lines are not recorded: a
// step's output tail comes with the deployment's final snapshot.
func (r *Recorder) Observe(ev deploy.Event) {
	if ev.Kind == deploy.EventOutput {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.log.Warn("history: event after the recorder closed, not recorded", "deployment", ev.DeploymentID, "kind", string(ev.Kind))
		return
	}
	r.pending = append(r.pending, ev)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start starts the writer.
func (r *Recorder) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started && !r.closed {
		r.started = true
		go r.run()
	}
}

// Close writes every event queued so far, then stops the writer. Events
// that arrive after Close are dropped (and logged).
func (r *Recorder) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.closed = true
	started := r.started
	r.mu.Unlock()
	if !started {
		// Never started: write what was queued here.
		r.drain()
		r.retryUnsaved(true)
		close(r.done)
		return
	}
	close(r.stop)
	<-r.done
}

func (r *Recorder) run() {
	defer close(r.done)
	var prune <-chan time.Time
	if r.PruneEvery > 0 {
		t := time.NewTicker(r.PruneEvery)
		defer t.Stop()
		prune = t.C
	}
	retryEvery := r.RetryEvery
	if retryEvery <= 0 {
		retryEvery = defaultRetryEvery
	}
	for {
		r.drain()
		var retry <-chan time.Time
		if len(r.unsaved) > 0 {
			retry = time.After(retryEvery)
		}
		select {
		case <-retry:
			r.retryUnsaved(false)
		case <-r.wake:
		case <-prune:
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			if _, err := r.store.Prune(ctx); err != nil {
				r.log.Error("history: prune failed", "error", err)
			}
			cancel()
		case <-r.stop:
			// Closed is set: nothing more is queued after this drain.
			r.drain()
			r.retryUnsaved(true)
			return
		}
	}
}

// drain writes what is queued, oldest first.
func (r *Recorder) drain() {
	for {
		r.mu.Lock()
		evs := r.pending
		r.pending = nil
		r.mu.Unlock()
		if len(evs) == 0 {
			return
		}
		for _, ev := range evs {
			r.write(ev)
		}
	}
}

func (r *Recorder) write(ev deploy.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var err error
	switch ev.Kind {
	case deploy.EventDeployment:
		if ev.Deployment == nil {
			return
		}
		err = r.store.Save(ctx, ev.Deployment, r.owner)
		if isDone(ev.Deployment.Status) {
			delete(r.tracked, ev.DeploymentID)
		} else {
			r.track(ev.DeploymentID).reset(ev.Deployment)
		}
		if err != nil {
			r.unsaved[ev.DeploymentID] = ev.Deployment
		} else {
			delete(r.unsaved, ev.DeploymentID)
		}
	case deploy.EventHost:
		idx := r.track(ev.DeploymentID).host(ev.Host).idx
		if !r.saveUnsaved(ctx, ev.DeploymentID) {
			return // the snapshot saved later holds this host too
		}
		err = r.store.SaveHost(ctx, ev.DeploymentID, ev.Host, idx, ev.Status)
	case deploy.EventStep:
		st := deploy.StepResult{Name: ev.Step, Status: ev.Status, Duration: ev.Duration}
		if ev.Status == deploy.StatusRunning {
			// An end event keeps the start its running event wrote.
			st.Started = ev.Time
		}
		if ev.Error != "" {
			st.Err = stepError(ev.Error)
		}
		idx := r.track(ev.DeploymentID).host(ev.Host).step(ev.Step, ev.Status)
		if !r.saveUnsaved(ctx, ev.DeploymentID) {
			return
		}
		err = r.store.SaveStep(ctx, ev.DeploymentID, ev.Host, idx, st)
	}
	if err != nil {
		r.log.Error("history: write failed (the deployment goes on)", "deployment", ev.DeploymentID, "kind", string(ev.Kind), "error", err)
	}
}

// saveUnsaved saves id's snapshot again when an earlier write of it
// failed, and reports whether id's rows are as written so far (nothing
// unsaved), so that a host or step event may go on top of them.
func (r *Recorder) saveUnsaved(ctx context.Context, id string) bool {
	snap, ok := r.unsaved[id]
	if !ok {
		return true
	}
	if err := r.store.Save(ctx, snap, r.owner); err != nil {
		return false
	}
	delete(r.unsaved, id)
	return true
}

// retryUnsaved saves again each deployment whose write failed. last: the
// recorder is closing, and what still fails is logged as lost.
func (r *Recorder) retryUnsaved(last bool) {
	for id, snap := range r.unsaved {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := r.store.Save(ctx, snap, r.owner)
		cancel()
		switch {
		case err == nil:
			delete(r.unsaved, id)
			r.log.Info("history: deployment recorded after a failed write", "deployment", id, "status", string(snap.Status))
		case last:
			r.log.Error("history: deployment not recorded as it stands (the recorder is closing)", "deployment", id,
				"status", string(snap.Status), "error", err)
		}
	}
}

type stepError string

func (e stepError) Error() string { return string(e) }

func isDone(s deploy.Status) bool {
	return s != deploy.StatusQueued && s != deploy.StatusRunning
}

// tracking is what the recorder knows of an unfinished deployment's hosts
// and steps, in order.
type tracking struct {
	hosts map[string]*hostTrack
	n     int
}

type hostTrack struct {
	idx   int
	steps []stepTrack
}

type stepTrack struct {
	name   deploy.Step
	status deploy.Status
}

func (r *Recorder) track(id string) *tracking {
	t := r.tracked[id]
	if t == nil {
		t = &tracking{hosts: map[string]*hostTrack{}}
		r.tracked[id] = t
	}
	return t
}

// reset takes the hosts and steps from a snapshot.
func (t *tracking) reset(d *deploy.Deployment) {
	t.hosts, t.n = map[string]*hostTrack{}, 0
	for _, h := range d.Hosts {
		ht := t.host(h.Host.String())
		for _, st := range h.Steps {
			ht.steps = append(ht.steps, stepTrack{name: st.Name, status: st.Status})
		}
	}
}

func (t *tracking) host(name string) *hostTrack {
	h := t.hosts[name]
	if h == nil {
		h = &hostTrack{idx: t.n}
		t.n++
		t.hosts[name] = h
	}
	return h
}

// step returns the number of the step an event is about: a new one when it
// starts, else the last one of that name that is running.
func (h *hostTrack) step(name deploy.Step, status deploy.Status) int {
	if status != deploy.StatusRunning {
		for i := len(h.steps) - 1; i >= 0; i-- {
			if h.steps[i].name == name && h.steps[i].status == deploy.StatusRunning {
				h.steps[i].status = status
				return i
			}
		}
	}
	h.steps = append(h.steps, stepTrack{name: name, status: status})
	return len(h.steps) - 1
}
