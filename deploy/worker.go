package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Worker runs deployments one at a time, in the order they were asked
// for. Requests for the branch tip that arrive while one is queued join it
// (the tip is resolved when the deployment starts, so the newest push is
// what ships, once), and a redelivered webhook (same delivery id) is
// recognised and not deployed twice. It keeps recent deployments in memory.
// With PromoteFrom, every deploy request goes through a Gate first: one
// for a commit the other app has not deployed everywhere is recorded as
// refused and never queued.
//
// Fill the exported fields, start Run in a goroutine, then Submit from any
// goroutine: the methods are safe for concurrent use.
type Worker struct {
	Deployer *Deployer
	// App is the app this worker deploys, stamped on its deployments
	// (empty: DefaultApp).
	App string
	// PromoteFrom, when set, names the app whose successfully deployed
	// commits are the only ones this worker deploys (DEPLOY_PROMOTE_FROM);
	// Peers answers for it, and for requests with From.
	PromoteFrom string
	Peers       Peers
	// Hosts is the pool, in deploy order.
	Hosts  []Host
	Logger *slog.Logger
	// Keep is how many finished deployments are kept (default 100).
	Keep int
	// MaxQueue bounds the deployments waiting to run (default 20).
	MaxQueue int
	// Grace is how long a running deployment may take to reach a safe
	// point after Run's context ends before its remote command is
	// stopped (default 2m).
	Grace time.Duration
	// Backlog, when set, is the durable queue the worker shares with the
	// deployers of its database: Submit commits each request there before
	// it answers, and Run claims the app's deployments from it, one at a
	// time across all deployers (see worker_backlog.go). Nil: the queue is
	// in memory.
	Backlog Backlog
	// Record, with a Backlog, marks interrupted the deployments whose
	// deployer stopped before they finished; nil: the Deployer's
	// Observer records them.
	Record Interrupter
	// PollEvery, with a Backlog, is how often Run looks for deployments
	// other deployers queued and for claims that expired (default 1s).
	PollEvery time.Duration

	mu         sync.Mutex
	queue      []*Deployment // waiting, oldest first
	running    *Deployment
	taken      time.Time     // when running left the queue, by now()
	all        []*Deployment // newest first: queued, running and finished
	deliveries map[string]string
	order      []string // delivery keys, oldest first, to bound the map
	wake       chan struct{}
	closed     bool
	looping    bool
	pending    *workerSetup // a Reconfigure waiting for the running deployment to end

	// now is the clock Health judges progress by; nil means time.Now.
	// Tests set it to look at a deployment as it will be minutes later,
	// past DEPLOY_STEP_TIMEOUT + 1m, without waiting that long.
	now func() time.Time
}

func (w *Worker) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

// Ticket is the answer to Submit.
type Ticket struct {
	// ID is the deployment that will carry out the request.
	ID string
	// Status is "queued" (a new deployment), "coalesced" (joined one that
	// is already waiting), "duplicate" (this delivery was seen before) or
	// "refused" (recorded, not carried out: see RefusedError).
	Status string
	// Commit is the commit the request names: the requested commit in
	// full, the payload's commit for a webhook, or for an API request of
	// the tip the tip as it is now. The deployment resolves the tip again
	// when it starts, except for a promoted app (DEPLOY_PROMOTE_FROM) or
	// a request with From: those are pinned to Commit, the commit checked.
	Commit string
}

var (
	// ErrQueueFull means too many deployments are waiting.
	ErrQueueFull = errors.New("deployment queue is full")
	// ErrClosed means the worker is shutting down.
	ErrClosed = errors.New("deployer is shutting down")
)

// RequestError is a request that names something that does not exist
// (an unknown host): the requester's mistake.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

const maxDeliveries = 10000

func (w *Worker) init() {
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
		w.deliveries = map[string]string{}
	}
}

func (w *Worker) appName() string {
	if w.App == "" {
		return DefaultApp
	}
	return w.App
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Submit queues req. A request for a specific commit is checked against
// the repository first (a *CommitError when it is not on the branch); host
// names must be in the pool and a delivery id valid (ValidDeliveryID),
// or Submit returns a *RequestError. A deploy request goes through the
// app's Gate: one that promotion turns down is recorded as a refused
// deployment, never queued, and Submit returns its Ticket (Status
// "refused") with a *RefusedError. A delivery seen before answers
// "duplicate", refused or not.
func (w *Worker) Submit(ctx context.Context, req Request) (Ticket, error) {
	hosts, err := w.checkRequest(req)
	if err != nil {
		return Ticket{}, err
	}
	key := ""
	if req.DeliveryID != "" {
		key = req.Provider + "\x00" + req.DeliveryID
		// Before any look at the repository or the peers: a redelivery
		// costs nothing.
		if t, ok := w.duplicate(key, req.PayloadCommit); ok {
			return t, nil
		}
	}
	adm := Admission{Request: req, Commit: req.PayloadCommit}
	if req.Action != ActionRollback {
		// Rollbacks are never gated: going back must always be possible.
		next := w.setup()
		gate := Gate{App: w.appName(), PromoteFrom: next.promoteFrom, Peers: w.Peers, Resolver: next.deployer.Resolver}
		if adm, err = gate.Admit(ctx, req); err != nil {
			return Ticket{}, err
		}
		req = adm.Request
	}
	if w.Backlog != nil {
		return w.submitDurable(ctx, req, adm, hosts, key)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	if w.closed {
		return Ticket{}, ErrClosed
	}
	if t, ok := w.duplicateLocked(key, adm.Commit); ok {
		return t, nil
	}
	if adm.Refused != "" {
		return w.refuseLocked(req, adm, hosts, key)
	}
	ticket := Ticket{Status: "queued", Commit: adm.Commit}
	if q := w.waitingFor(req); q != nil {
		// The newest push is what the waiting deployment will ship.
		q.update(func() {
			if req.PayloadCommit != "" {
				q.Request.PayloadCommit = req.PayloadCommit
				q.Request.Actor = req.Actor
			}
		})
		ticket = Ticket{ID: q.ID, Status: "coalesced", Commit: adm.Commit}
	} else {
		max := w.MaxQueue
		if max <= 0 {
			max = 20
		}
		if len(w.queue) >= max {
			return Ticket{}, ErrQueueFull
		}
		dep := NewDeployment(req, time.Now())
		dep.App = w.appName()
		w.nextDeployerLocked().observe(dep)
		w.queue = append(w.queue, dep)
		w.all = append([]*Deployment{dep}, w.all...)
		w.trim()
		ticket.ID = dep.ID
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.rememberLocked(key, ticket.ID)
	return ticket, nil
}

// checkRequest checks what Submit can check without I/O, and returns the
// hosts req names.
func (w *Worker) checkRequest(req Request) ([]Host, error) {
	hosts, err := w.selectHosts(req.Hosts)
	if err != nil {
		return nil, err
	}
	if err := ValidDeliveryID(req.DeliveryID); err != nil {
		// Every delivery id is remembered (maxDeliveries of them): each
		// must be small.
		return nil, &RequestError{Msg: err.Error()}
	}
	switch {
	case req.Action != "" && req.Action != ActionDeploy && req.Action != ActionRollback:
		return nil, &RequestError{Msg: fmt.Sprintf("unknown action %q", req.Action)}
	case req.Action == ActionRollback && req.From != "":
		return nil, &RequestError{Msg: "from: only a deploy promotes from another app"}
	case req.Action == ActionRollback && req.Release != "":
		// Checked again by Rollback; refused here so the requester hears.
		if err := ValidReleaseName(req.Release); err != nil {
			return nil, &RequestError{Msg: "release: " + err.Error()}
		}
	}
	return hosts, nil
}

// duplicate answers a delivery seen before.
func (w *Worker) duplicate(key, commit string) (Ticket, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	return w.duplicateLocked(key, commit)
}

func (w *Worker) duplicateLocked(key, commit string) (Ticket, bool) {
	if key == "" {
		return Ticket{}, false
	}
	id, ok := w.deliveries[key]
	return Ticket{ID: id, Status: "duplicate", Commit: commit}, ok
}

// rememberLocked keeps delivery key as answered by deployment id.
func (w *Worker) rememberLocked(key, id string) {
	if key == "" {
		return
	}
	w.deliveries[key] = id
	w.order = append(w.order, key)
	if len(w.order) > maxDeliveries {
		delete(w.deliveries, w.order[0])
		w.order = w.order[1:]
	}
}

// refuseLocked records a request the gate turned down as a finished,
// refused deployment: kept with the others (and trimmed like them), never
// in the queue, so it neither waits for nor holds up anything.
func (w *Worker) refuseLocked(req Request, adm Admission, hosts []Host, key string) (Ticket, error) {
	dep := NewDeployment(req, time.Now())
	dep.App = w.appName()
	w.all = append([]*Deployment{dep}, w.all...)
	refused := w.nextDeployerLocked().Refuse(dep, adm.Release, hosts, adm.Refused)
	w.trim()
	w.rememberLocked(key, dep.ID)
	return Ticket{ID: dep.ID, Status: "refused", Commit: adm.Commit}, refused
}

// waitingFor returns the queued deployment that would do exactly what req
// asks (same branch, same commit or both the tip, same hosts). Rollbacks
// never coalesce: each one asked for runs, and a deploy asked for after a
// queued rollback never joins a deploy queued before it (it must run after
// the rollback).
func (w *Worker) waitingFor(req Request) *Deployment {
	if req.Action == ActionRollback {
		return nil
	}
	for i := len(w.queue) - 1; i >= 0; i-- {
		q := w.queue[i]
		if q.Action == ActionRollback {
			return nil
		}
		if r := q.Request; r.Push == req.Push && slices.Equal(r.Hosts, req.Hosts) {
			return q
		}
	}
	return nil
}

// trim forgets the oldest finished deployments beyond Keep.
func (w *Worker) trim() {
	keep := w.Keep
	if keep <= 0 {
		keep = 100
	}
	finished := 0
	out := w.all[:0]
	for _, d := range w.all {
		if d != w.running && !slices.Contains(w.queue, d) {
			finished++
			if finished > keep {
				continue
			}
		}
		out = append(out, d)
	}
	w.all = out
}

// selectHosts are the hosts a request names (all without names); a host
// not in the pool is a *RequestError, which the API answers 400.
func (w *Worker) selectHosts(names []string) ([]Host, error) {
	hosts, err := SelectHosts(w.setup().hosts, names)
	if err != nil {
		return nil, &RequestError{Msg: "hosts: " + err.Error()}
	}
	return hosts, nil
}

// Close makes Submit refuse (ErrClosed) from now on; what is queued or
// running carries on until Run's ctx ends. A server shutting down calls it
// first, so that no request still in flight is answered "queued" for a
// deployment that the stopping worker would then cancel.
func (w *Worker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// Run carries out queued deployments until ctx ends. Then it stops
// accepting, asks the running deployment to stop at its next safe point
// (the step that runs finishes; a host already switched is restarted),
// cancels it for good after Grace, marks the waiting ones cancelled, and
// returns.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	w.init()
	w.looping = true
	w.mu.Unlock()
	if w.Backlog != nil {
		return w.runBacklog(ctx)
	}
	defer func() {
		w.mu.Lock()
		w.looping = false
		w.closed = true
		queued := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, d := range queued {
			d.update(func() { d.Status, d.Err, d.Finished = StatusCancelled, ErrStopped, time.Now() })
		}
	}()
	for ctx.Err() == nil {
		w.mu.Lock()
		var dep *Deployment
		if len(w.queue) > 0 {
			dep, w.queue = w.queue[0], w.queue[1:]
			w.running, w.taken = dep, w.clock()
		}
		w.mu.Unlock()
		if dep == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-w.wake:
				continue
			}
		}
		w.runOne(ctx, dep, nil)
		w.ran()
	}
	return nil
}

// ran ends the running deployment's turn: a Reconfigure waiting for it
// takes effect.
func (w *Worker) ran() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = nil
	w.applyPendingLocked()
	w.trim()
}

// runOne runs dep. The end of ctx, or of held when not nil (the claim on
// dep is lost), stops it at its next safe point, and for good after Grace.
func (w *Worker) runOne(ctx context.Context, dep *Deployment, held context.Context) {
	hosts, err := w.runningHosts(dep.Request.Hosts)
	if err != nil {
		_ = w.Deployer.finish(w.logger(), dep, err)
		return
	}
	// The deployment gets its own context: the end of ctx asks it to
	// stop gently first, and only after Grace for good.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var once sync.Once
	stopping := func(why error) {
		once.Do(func() {
			dep.stopWith(why)
			grace := w.Grace
			if grace <= 0 {
				grace = 2 * time.Minute
			}
			t := time.AfterFunc(grace, cancel)
			context.AfterFunc(runCtx, func() { t.Stop() })
		})
	}
	stop := context.AfterFunc(ctx, func() { stopping(ErrStopped) })
	defer stop()
	if held != nil {
		defer context.AfterFunc(held, func() { stopping(claimLostStop(context.Cause(held))) })()
	}
	// The outcome is recorded in dep and logged.
	if dep.Action == ActionRollback {
		_ = w.Deployer.Rollback(runCtx, dep, hosts)
		return
	}
	_ = w.Deployer.Run(runCtx, dep, hosts)
}

// Releases lists the releases on every host of the pool; see
// Deployer.Releases. It runs beside deployments (it only reads).
func (w *Worker) Releases(ctx context.Context) ([]HostReleases, error) {
	s := w.setup()
	return s.deployer.Releases(ctx, s.hosts)
}

// List returns snapshots of the kept deployments, newest first.
func (w *Worker) List() []*Deployment {
	w.mu.Lock()
	all := slices.Clone(w.all)
	w.mu.Unlock()
	out := make([]*Deployment, len(all))
	for i, d := range all {
		out[i] = d.Snapshot()
	}
	return out
}

// Get returns a snapshot of deployment id.
func (w *Worker) Get(id string) (*Deployment, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.all {
		if d.ID == id {
			return d.Snapshot(), true
		}
	}
	return nil, false
}

// Health is the worker's state for monitoring.
type Health struct {
	QueueLength int
	Running     *Deployment // nil when idle
	// Last is the most recently finished deployment, nil if none.
	Last *Deployment
	// Stuck says why the worker cannot make progress; "" when it can.
	Stuck string
}

// Health reports the queue, the running and the last deployment, and
// whether the worker is stuck: a step has run longer than its timeout
// allows, or deployments wait while no worker loop runs.
func (w *Worker) Health() Health {
	w.mu.Lock()
	h := Health{QueueLength: len(w.queue)}
	running, taken, looping := w.running, w.taken, w.looping
	stepTimeout := w.Deployer.StepTimeout
	var last *Deployment
	for _, d := range w.all {
		if d != w.running && !slices.Contains(w.queue, d) {
			last = d
			break
		}
	}
	w.mu.Unlock()
	if last != nil {
		h.Last = last.Snapshot()
	}
	if running != nil {
		h.Running = running.Snapshot()
		idle, where := sinceProgress(h.Running, taken, w.clock())
		if idle > stepTimeout+time.Minute {
			h.Stuck = fmt.Sprintf("deployment %s has made no progress for %s%s (DEPLOY_STEP_TIMEOUT is %s)",
				h.Running.ID, idle.Round(time.Second), where, stepTimeout)
		}
	}
	if !looping && h.QueueLength > 0 {
		h.Stuck = "deployments are waiting but the worker is not running"
	}
	return h
}

// sinceProgress is how long, at now, the running deployment has been in
// its current state: the running step's age, or the time since the last
// step (or the start, or when it was taken off the queue: before the
// Deployer records the start, Started is zero) when none runs. where names
// the oldest step still running (", in step pip on web1"), "" when none
// runs.
func sinceProgress(d *Deployment, taken, now time.Time) (idle time.Duration, where string) {
	last := taken
	if d.Started.After(last) {
		last = d.Started
	}
	var oldest time.Time
	for _, h := range d.Hosts {
		for _, s := range h.Steps {
			t := s.Started
			if s.Status == StatusRunning {
				if where == "" || t.Before(oldest) {
					oldest, where = t, fmt.Sprintf(", in step %s on %s", s.Name, h.Host)
				}
			} else {
				t = t.Add(s.Duration)
			}
			if t.After(last) {
				last = t
			}
		}
	}
	return now.Sub(last), where
}
