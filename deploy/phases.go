package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A deployment runs in phases, so that a failure while building changes
// nothing that serves traffic, and the pool is mixed for as short a time
// as possible:
//
//  1. prepare: one command per host (preparerun.go) that first, on every
//     host at once, checks the host and fetches the commit into its
//     mirror (nothing that serves changes), then (DEPLOY_PARALLEL at
//     once, in order) takes the lock and builds the release up to its
//     before-switch hook. A failure anywhere removes every prepared
//     release: no host has switched.
//  2. switch and activate: point current at the new release (a rename),
//     restart, health-check, run the after-switch hook and retention
//     (retention keeps the release before, for a revert). Both are lines
//     to the host's prepare command, which holds the lock: a round trip
//     each, no command of their own. Hosts are
//     activated in batches of RestartBatch (one by default; never all of
//     a pool of two or more, so one host always serves): the hosts of a
//     batch at once, the batches one after another.
//     Without a health check there is nothing to wait for between hosts:
//     every host switches at once (the pool is mixed for about one round
//     trip), then each batch is activated in order.
//     With a health check (DEPLOY_HEALTH_URL) each batch is switched and
//     activated before the next one switches, so a release that fails its
//     check reaches one batch only and the rollout stops there: the hosts
//     after it keep their current (their prepared release is removed).
//     When a host fails, its batch goes back (and is restarted on its
//     previous release); hosts after it that were switched but not yet
//     restarted go back without a restart; with RollbackAll the hosts
//     before it go back too.
//
// The host locks are held from phase 1 to the end.

func (d *Deployer) rollout(ctx context.Context, log *slog.Logger, dep *Deployment, runs []*hostRun) error {
	// The retention of the hosts activated last may still run: the
	// deployment ends with it (its steps are part of the record).
	defer func() {
		for _, r := range runs {
			r.awaitRetention()
		}
	}()
	if err := d.prepareAll(ctx, runs); err != nil {
		d.undo(ctx, runs)
		return err
	}
	if err := checkStop(ctx, dep, "before the switch"); err != nil {
		d.undo(ctx, runs)
		return err
	}
	// failed puts back the batch that failed to activate (the hosts of a
	// batch restart together: one failing sends all of them back), the
	// hosts after it, and with RollbackAll the ones before it.
	failed := func(first int, batch []*hostRun, err error) error {
		for _, r := range batch {
			r.restarted = true // it may have been, at least partly
		}
		undone := runs[first:]
		if d.RollbackAll {
			undone = runs
		}
		d.undo(ctx, undone)
		return err
	}
	rolling := d.HealthURL != ""
	batches := d.batches(runs)
	start := time.Now()
	first := 0 // index in runs of the batch's first host
	switching := batches
	if !rolling {
		switching = [][]*hostRun{runs} // all at once
	}
	for _, batch := range switching {
		if err := fence(ctx, d, dep, runs); err != nil {
			return err
		}
		if err := atOnce(batch, func(r *hostRun) error { return r.switchHost(ctx) }); err != nil {
			d.undo(ctx, runs)
			return err
		}
		if rolling {
			if err := fence(ctx, d, dep, runs); err != nil {
				return err
			}
			if err := atOnce(batch, func(r *hostRun) error { return r.activate(ctx) }); err != nil {
				return failed(first, batch, err)
			}
		}
		first += len(batch)
	}
	log.Info("switched every host", "hosts", len(runs), "duration", time.Since(start), "one_by_one", rolling)
	if !rolling {
		first = 0
		for _, batch := range batches {
			if err := fence(ctx, d, dep, runs); err != nil {
				return err
			}
			if err := atOnce(batch, func(r *hostRun) error { return r.activate(ctx) }); err != nil {
				return failed(first, batch, err)
			}
			first += len(batch)
		}
	}
	for _, r := range runs {
		r.dep.update(func() { r.res.Status = StatusSucceeded })
	}
	return nil
}

// fence stops the rollout once dep's claim on its app is lost (see
// Deployment.Fence): another deployer may be deploying the app, so no host
// is switched or restarted from then on, not even back; only the releases
// prepared on hosts not switched yet are removed.
func fence(ctx context.Context, d *Deployer, dep *Deployment, runs []*hostRun) error {
	err := dep.fenced()
	if err == nil {
		return nil
	}
	var unswitched []*hostRun
	for _, r := range runs {
		if !r.switched {
			unswitched = append(unswitched, r)
		}
	}
	d.undo(ctx, unswitched)
	return fmt.Errorf("stopped before the next switch or restart: %w", err)
}

func checkStop(ctx context.Context, dep *Deployment, where string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deployment stopped %s: %w", where, err)
	}
	if dep.stopRequested() {
		return fmt.Errorf("%s: %w", where, dep.stopError())
	}
	return nil
}

// prepareAll prepares the hosts. Every host's prepare command starts at
// once (maxDials at a time) and fetches; the hosts then take their locks
// and build, up to Parallel at once, starting in order. After the first
// failure no further host is started; the ones under way finish. It
// returns the first failure in host order.
func (d *Deployer) prepareAll(ctx context.Context, runs []*hostRun) error {
	n := d.Parallel
	if n < 1 {
		n = 1
	}
	var failed atomic.Bool
	ready := make([]func() error, len(runs))
	results := make([]chan error, len(runs))
	for i := range runs {
		results[i] = make(chan error, 1)
		ready[i] = sync.OnceValue(func() error { return <-results[i] })
	}
	var started sync.WaitGroup
	started.Go(func() {
		forEachHost(runs, maxDials, func(i int, r *hostRun) {
			if failed.Load() || ctx.Err() != nil {
				results[i] <- errNotStarted
				return
			}
			results[i] <- r.startPrepare(ctx)
		})
	})
	defer started.Wait()
	defer failed.Store(true) // hosts not started by now need not start
	if n > 1 {
		// The locks first, one host after another in hosts-file order, as
		// one at a time does and rollback does: two deployers on the same
		// hosts then queue at the first one, instead of each holding
		// hosts the other waits for until both fail with ErrBusy.
		for i, r := range runs {
			if err := ready[i](); err != nil {
				return err
			}
			if err := r.takeLock(ctx); err != nil {
				return err
			}
		}
	}
	errs := make([]error, len(runs))
	forEachHost(runs, n, func(i int, r *hostRun) {
		if failed.Load() {
			errs[i] = errNotStarted
			return
		}
		err := ready[i]()
		if err == nil {
			err = r.prepareHost(ctx)
		}
		if err != nil {
			errs[i] = err
			failed.Store(true)
		}
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, errNotStarted) {
			return err
		}
	}
	return nil
}

var errNotStarted = errors.New("not started: another host failed")

// undo puts the given hosts back as they were: switched ones back on
// their previous release (restarted there when the new one was), prepared
// ones without their new release.
func (d *Deployer) undo(ctx context.Context, runs []*hostRun) {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		r.awaitRetention()
		switch {
		case r.switched:
			if r.revert(ctx, r.prev, r.restarted) {
				r.switched = false
				r.setStatus(StatusRolledBack)
			} else {
				r.setStatus(StatusFailed)
			}
		case r.prepared:
			r.remove(ctx)
			r.prepared = false
			r.setStatus(StatusCancelled)
		}
	}
}

func (r *hostRun) setStatus(s Status) {
	r.dep.update(func() {
		if r.res.Status != StatusFailed {
			r.res.Status = s
		}
	})
}
