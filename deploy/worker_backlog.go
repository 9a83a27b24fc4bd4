package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A Worker with a Backlog keeps its queue in the database it shares with
// the other deployers (and, for one deployer, in SQLite, so that a
// request it answered survives its restart):
//
//   - Submit commits each request with Backlog.Enqueue before it answers;
//     duplicates and coalescing are the Backlog's, across deployers.
//   - Run claims the app's next deployment (Backlog.Claim), woken by a
//     local Submit and every PollEvery for what other deployers queued,
//     runs it under the job's id, keeps the claim alive (Lease.Hold) and
//     finishes it with its outcome. When the claim is lost (the database
//     unreachable for most of a lease, or the lease ended), the
//     deployment is stopped at its next safe point, cancelled after
//     Grace, and fenced: it switches and restarts no host from then on.
//   - Every PollEvery, Run also expires the claims of deployers that died
//     (Backlog.Expire), records those deployments as interrupted (Record)
//     and mirrors the app's waiting deployments for List, Get and Health.
//
// The in-memory queue then only mirrors the database's.

// defaultPollEvery is PollEvery's default.
const defaultPollEvery = time.Second

func (w *Worker) pollEvery() time.Duration {
	if w.PollEvery > 0 {
		return w.PollEvery
	}
	return defaultPollEvery
}

// submitDurable is Submit's end with a Backlog: the request is committed
// before the ticket is returned. Refusals stay in memory (and the
// history), as without a Backlog.
func (w *Worker) submitDurable(ctx context.Context, req Request, adm Admission, hosts []Host, key string) (Ticket, error) {
	w.mu.Lock()
	w.init()
	if w.closed {
		w.mu.Unlock()
		return Ticket{}, ErrClosed
	}
	if t, ok := w.duplicateLocked(key, adm.Commit); ok {
		w.mu.Unlock()
		return t, nil
	}
	if adm.Refused != "" {
		defer w.mu.Unlock()
		return w.refuseLocked(req, adm, hosts, key)
	}
	w.mu.Unlock()

	dep := NewDeployment(req, time.Now())
	dep.App = w.appName()
	ticket, err := w.Backlog.Enqueue(ctx, dep.App, dep.ID, req)
	if err != nil {
		return Ticket{}, err
	}
	ticket.Commit = adm.Commit

	w.mu.Lock()
	defer w.mu.Unlock()
	switch ticket.Status {
	case "queued":
		// Run may have mirrored (or even claimed) it already.
		if w.findLocked(dep.ID) == nil {
			w.nextDeployerLocked().observe(dep)
			w.queue = append(w.queue, dep)
			w.all = append([]*Deployment{dep}, w.all...)
			w.trim()
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
	case "coalesced":
		if q := w.findLocked(ticket.ID); q != nil && req.PayloadCommit != "" && slices.Contains(w.queue, q) {
			q.update(func() { q.Request.PayloadCommit, q.Request.Actor = req.PayloadCommit, req.Actor })
		}
	}
	w.rememberLocked(key, ticket.ID)
	return ticket, nil
}

// findLocked returns the kept deployment id, nil when there is none.
func (w *Worker) findLocked(id string) *Deployment {
	for _, d := range w.all {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// runBacklog is Run with a Backlog. What waits when ctx ends stays in
// the database, for this deployer's next start or another deployer.
func (w *Worker) runBacklog(ctx context.Context) error {
	defer func() {
		w.mu.Lock()
		w.looping, w.closed = false, true
		w.queue = nil
		w.trim()
		w.mu.Unlock()
	}()
	tick := time.NewTicker(w.pollEvery())
	defer tick.Stop()
	failing := false
	for ctx.Err() == nil {
		w.expire(ctx)
		lease, err := w.Backlog.Claim(ctx, w.appName())
		switch {
		case err == nil:
			failing = false
			w.runLease(ctx, lease)
			continue
		case errors.Is(err, ErrNoJob) || ctx.Err() != nil:
			failing = false
		case !failing:
			// Logged once until it works again: the poll goes on.
			failing = true
			w.logger().Error("deployment queue: cannot claim the next deployment (trying again)", "app", w.appName(), "error", err)
		}
		w.mirror(ctx)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-tick.C:
		}
	}
	return nil
}

// runLease runs a claimed deployment, holding its claim, and finishes it.
func (w *Worker) runLease(ctx context.Context, lease Lease) {
	job := lease.Job()
	w.mu.Lock()
	dep := w.findLocked(job.ID)
	if dep == nil {
		// Queued by another deployer: the Deployer observes it when it
		// runs it.
		dep = &Deployment{ID: job.ID, App: w.appName(), Action: job.Request.Action, Request: job.Request, Queued: job.Queued, Status: StatusQueued}
		if dep.Action == "" {
			dep.Action = ActionDeploy
		}
		w.all = append([]*Deployment{dep}, w.all...)
	}
	w.queue = slices.DeleteFunc(w.queue, func(d *Deployment) bool { return d.ID == job.ID })
	w.running, w.taken = dep, w.clock()
	w.mu.Unlock()

	// The claim outlives ctx: a deployer shutting down keeps it while its
	// deployment reaches a safe point.
	held, stop := lease.Hold(context.WithoutCancel(ctx))
	dep.Fence(held)
	unmirror := w.mirrorWhile(ctx)
	w.runOne(ctx, dep, held)
	unmirror()
	stop()
	if err := dep.fenced(); err != nil {
		dep.update(func() {
			dep.Status = StatusInterrupted
			dep.Err = claimLostEnd(err)
			for _, h := range dep.Hosts {
				if h.Status == StatusRunning {
					h.Status = StatusInterrupted
				}
			}
		})
		w.logger().Error("deployment interrupted: the claim on it was lost", "deployment", dep.ID, "app", w.appName(), "error", err)
	}
	w.finishLease(ctx, lease, dep)
	w.ran()
}

// finishLease records the outcome in the Backlog, trying again while the
// database cannot be reached: the app's next deployment waits for it.
// Past a lease, another deployer expires the claim (the history keeps the
// outcome this deployer recorded).
func (w *Worker) finishLease(ctx context.Context, lease Lease, dep *Deployment) {
	outcome := dep.Snapshot().Status
	log := w.logger().With("deployment", dep.ID, "app", w.appName())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := lease.Finish(fctx, outcome)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrClaimLost):
			log.Warn("deployment queue: another deployer ended this deployment's claim (recorded as interrupted there)", "status", string(outcome))
			return
		case time.Now().After(deadline):
			log.Error("deployment queue: the end of the deployment could not be recorded; another deployer will expire its claim", "error", err)
			return
		}
		log.Warn("deployment queue: cannot record the end of the deployment (trying again)", "error", err)
		select {
		case <-time.After(w.pollEvery()):
		case <-ctx.Done():
			// Shutting down: a few more tries, quickly.
			if soon := time.Now().Add(10 * time.Second); soon.Before(deadline) {
				deadline = soon
			}
			time.Sleep(min(w.pollEvery(), time.Second))
		}
	}
}

// expire ends the claims of deployers that died and records their
// deployments as interrupted.
func (w *Worker) expire(ctx context.Context) {
	jobs, err := w.Backlog.Expire(ctx)
	if err != nil {
		return // the claim that follows says the database is away
	}
	for _, j := range jobs {
		reason := fmt.Sprintf("interrupted: its deployer %s stopped renewing its claim before the deployment finished (it stopped, or lost the database for longer than the lease)", j.Owner)
		w.logger().Warn("deployment interrupted: its deployer stopped before it finished", "deployment", j.ID, "app", j.App, "deployer", j.Owner)
		w.recordInterrupted(ctx, j, reason)
	}
}

// recordInterrupted marks j interrupted in the history: its row, as its
// deployer left it, or a row of its own when the history has none (its
// deployer died before writing it).
func (w *Worker) recordInterrupted(ctx context.Context, j BacklogJob, reason string) {
	if w.Record != nil {
		found, err := w.Record.Interrupt(ctx, j.ID, reason)
		if err != nil {
			w.logger().Error("history: cannot record an interrupted deployment", "deployment", j.ID, "error", err)
			return
		}
		if found {
			return
		}
	}
	now := time.Now()
	dep := &Deployment{ID: j.ID, App: j.App, Action: j.Request.Action, Request: j.Request, Queued: j.Queued,
		Started: now, Finished: now, Status: StatusInterrupted, Err: errors.New(reason)}
	if dep.Action == "" {
		dep.Action = ActionDeploy
	}
	w.mu.Lock()
	d := w.Deployer
	w.mu.Unlock()
	d.observe(dep)
}

// mirrorWhile mirrors the Backlog every PollEvery, until the returned func
// is called, while a deployment runs: what other deployers queue for the
// app meanwhile is listed too.
func (w *Worker) mirrorWhile(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(w.pollEvery())
		defer t.Stop()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-t.C:
				w.mirror(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// mirror copies the app's waiting deployments from the Backlog into
// w.queue, for List, Get and Health: those other deployers queued appear,
// those that left the queue elsewhere (claimed by another deployer) go,
// and the history tells what became of them.
func (w *Worker) mirror(ctx context.Context) {
	asOf := time.Now()
	_, waiting, err := w.Backlog.Pending(ctx, w.appName())
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	queue := make([]*Deployment, 0, len(waiting))
	for _, j := range waiting {
		d := w.findLocked(j.ID)
		if d == nil {
			d = &Deployment{ID: j.ID, App: w.appName(), Action: j.Request.Action, Request: j.Request, Queued: j.Queued, Status: StatusQueued}
			if d.Action == "" {
				d.Action = ActionDeploy
			}
			w.all = append(w.all, d)
		}
		queue = append(queue, d)
	}
	for _, d := range w.queue {
		// Submitted since the read: not gone, only not seen yet.
		if !slices.Contains(queue, d) && !d.Queued.Before(asOf) {
			queue = append(queue, d)
		}
	}
	w.all = slices.DeleteFunc(w.all, func(d *Deployment) bool {
		return d != w.running && !slices.Contains(queue, d) && d.Snapshot().Status == StatusQueued
	})
	slices.SortStableFunc(w.all, func(a, b *Deployment) int { return b.Queued.Compare(a.Queued) })
	w.queue = queue
}
