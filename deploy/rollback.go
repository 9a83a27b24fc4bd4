package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// RollbackTarget is where a rollback takes one host.
type RollbackTarget struct {
	Host Host
	// From is the release current points at now; To the one it will point
	// at. From == To when the host is already there (it is left alone).
	From ReleaseInfo
	To   ReleaseInfo
	// Err is why this host has no usable target.
	Err error
}

// TargetError is a rollback refused before any host was changed: some
// hosts lack a complete target release, have no current release or
// nothing before it, or could not be read.
type TargetError struct {
	// Release is the requested release; "" for each host's previous one.
	Release string
	// Hosts are the hosts without a usable target, each with its Err.
	Hosts []RollbackTarget
	// Total is the number of hosts of the rollback.
	Total int
}

func (e *TargetError) Error() string {
	what := "the release before current"
	if e.Release != "" {
		what = "release " + e.Release
	}
	var names []string
	for _, t := range e.Hosts {
		names = append(names, t.Host.String())
	}
	msg := fmt.Sprintf("rollback refused, no host was changed: %s is not usable on %d of %d host(s) (%s)",
		what, len(e.Hosts), e.Total, strings.Join(names, ", "))
	for _, t := range e.Hosts {
		msg += "\n  " + strings.ReplaceAll(t.Err.Error(), "\n", "\n  ")
	}
	return msg
}

// pickTarget chooses where hr's host goes: release to, or (to == "") the
// release just before current (HostReleases.Previous), which must be
// complete: skipping to an older one would send this host further back
// than the others.
func pickTarget(hr HostReleases, to string) (RollbackTarget, error) {
	t := RollbackTarget{Host: hr.Host}
	switch {
	case hr.Err != nil:
		return t, hr.Err
	case hr.CurrentTarget == "":
		return t, fmt.Errorf("no current release on this host: nothing to roll back from")
	case hr.Current == "":
		return t, fmt.Errorf("current points at %q, which is not a release folder", hr.CurrentTarget)
	}
	t.From = ReleaseInfo{Name: hr.Current}
	if r, ok := hr.Release(hr.Current); ok {
		t.From = r
	}
	if to == "" {
		if hr.Previous == "" {
			var older []string
			for _, r := range hr.Releases {
				if r.Name < hr.Current {
					older = append(older, r.Name+" lacks "+strings.Join(r.Missing, ", "))
				}
			}
			if len(older) == 0 {
				return t, fmt.Errorf("no release before current %s on this host", hr.Current)
			}
			return t, fmt.Errorf("no complete release before current %s on this host (%s)", hr.Current, strings.Join(older, "; "))
		}
		if r, _ := hr.Release(hr.Previous); !r.Complete {
			return t, fmt.Errorf("release %s, the one before current %s, is incomplete on this host (missing %s); choose a complete release with --to (pushdeploy releases lists them)",
				hr.Previous, hr.Current, strings.Join(r.Missing, ", "))
		}
		to = hr.Previous
	}
	r, ok := hr.Release(to)
	switch {
	case !ok:
		return t, fmt.Errorf("release %s does not exist on this host", to)
	case !r.Complete:
		return t, fmt.Errorf("release %s is incomplete on this host (missing %s)", to, strings.Join(r.Missing, ", "))
	}
	t.To = r
	return t, nil
}

// PlanRollback works out where a rollback would take each host, changing
// nothing anywhere (it does not even take the host lock, which would create
// the lock file): to is the release to go back to, "" for each host's
// release before current. The targets come back in host order; the error
// is a *TargetError when any host has no usable target or cannot be read,
// or a plain error for a bad release name or deployer configuration.
func (d *Deployer) PlanRollback(ctx context.Context, hosts []Host, to string) ([]RollbackTarget, error) {
	if to != "" {
		if err := ValidReleaseName(to); err != nil {
			return nil, &RequestError{Msg: "release: " + err.Error()}
		}
	}
	all, err := d.Releases(ctx, hosts)
	if err != nil {
		return nil, err
	}
	targets := make([]RollbackTarget, len(all))
	terr := &TargetError{Release: to, Total: len(all)}
	for i, hr := range all {
		t, err := pickTarget(hr, to)
		if err != nil {
			if hr.Err == nil {
				err = fmt.Errorf("host %s: %w", hr.Host, err)
			}
			t.Err = err
			terr.Hosts = append(terr.Hosts, t)
		}
		targets[i] = t
	}
	if len(terr.Hosts) > 0 {
		return targets, terr
	}
	return targets, nil
}

// RollbackSteps are the steps a rollback runs on each host after the
// checks, for plans.
func (d *Deployer) RollbackSteps() []Step {
	steps := []Step{StepSwitch}
	if d.RestartCmd != "" {
		steps = append(steps, StepRestart)
	}
	if d.HealthURL != "" {
		steps = append(steps, StepHealth)
	}
	return steps
}

// Rollback points current back on every host: to dep.Request.Release, or
// (when empty) to each host's release just before current.
// It logs in everywhere, takes the host lock on every host (in order), and
// checks every host's target before it changes anything: when any host
// lacks a complete target, nothing is switched anywhere and the error is a
// *TargetError naming each such host. Then host by host: switch (logged as
// "rollback" in revisions.log), restart, health check; a host that fails
// its restart or health check is put back where it was and restarted (and
// with RollbackAll so are the hosts before it), and the rollback stops.
// A lock held by another deployment past LockTimeout is ErrBusy, with the
// holder in the message. dep records everything as in Run.
func (d *Deployer) Rollback(ctx context.Context, dep *Deployment, hosts []Host) error {
	d.observe(dep)
	log := d.logger().With("deployment", dep.ID)
	to := dep.Request.Release
	if to != "" {
		if err := ValidReleaseName(to); err != nil {
			return d.finish(log, dep, &RequestError{Msg: "release: " + err.Error()})
		}
	}
	if err := d.checkHostsOnly(); err != nil {
		return d.finish(log, dep, err)
	}
	dep.update(func() {
		dep.Action, dep.Started, dep.Status = ActionRollback, d.now(), StatusRunning
		dep.Release, dep.ReleaseName = Release{Branch: d.branch()}, to
		dep.Hosts = nil
		for _, h := range hosts {
			dep.Hosts = append(dep.Hosts, &HostResult{Host: h, Status: StatusQueued})
		}
	})
	log.Info("rolling back", "release", orPrevious(to), "hosts", len(hosts), "trigger", dep.Request.Trigger)

	runs, closeAll, err := d.connectRuns(ctx, log, dep)
	defer closeAll()
	if err != nil {
		return d.finish(log, dep, err)
	}
	unlock, err := lockAll(ctx, runs)
	defer unlock()
	if err != nil {
		return d.finish(log, dep, err)
	}
	targets, err := verifyAll(ctx, runs, to)
	if err != nil {
		return d.finish(log, dep, err)
	}
	recordTargets(dep, targets)
	return d.finish(log, dep, d.switchAll(ctx, dep, runs, targets))
}

func orPrevious(to string) string {
	if to == "" {
		return "previous"
	}
	return to
}

// lockAll takes the lock of every host, in order (so two rollbacks cannot
// deadlock, and a deploy holds one host at a time). The returned func frees
// the locks taken, also after a failure.
func lockAll(ctx context.Context, runs []*hostRun) (func(), error) {
	var unlocks []func()
	unlock := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, r := range runs {
		u, err := r.lock(ctx)
		if err != nil {
			r.dep.update(func() { r.res.Status = StatusFailed })
			return unlock, err
		}
		unlocks = append(unlocks, u)
	}
	return unlock, nil
}

// verifyAll reads every host's releases (maxDials at a time) and picks its
// target; a *TargetError when any host has none.
func verifyAll(ctx context.Context, runs []*hostRun, to string) ([]RollbackTarget, error) {
	targets := make([]RollbackTarget, len(runs))
	forEachHost(runs, maxDials, func(i int, r *hostRun) { targets[i] = r.verify(ctx, to) })
	terr := &TargetError{Release: to, Total: len(runs)}
	for _, t := range targets {
		if t.Err != nil {
			terr.Hosts = append(terr.Hosts, t)
		}
	}
	if len(terr.Hosts) > 0 {
		return nil, terr
	}
	return targets, nil
}

// verify is the host's "verify" step: read its releases, pick the target.
func (r *hostRun) verify(ctx context.Context, to string) RollbackTarget {
	t := RollbackTarget{Host: r.res.Host}
	err := r.step(ctx, StepVerify, func(ctx context.Context, out io.Writer) error {
		hr, err := r.d.readReleases(ctx, r.conn, out)
		if err != nil {
			return err
		}
		hr.Host = r.res.Host
		if t, err = pickTarget(hr, to); err != nil {
			return err
		}
		r.root = hr.Root
		fmt.Fprintf(out, "current %s -> %s (commit %s)\n", t.From.Name, t.To.Name, t.To.Commit)
		return nil
	})
	if err != nil {
		t.Err = err
		r.dep.update(func() { r.res.Status = StatusFailed })
		return t
	}
	r.log.Info("rollback target", "step", StepVerify, "from", t.From.Name, "to", t.To.Name, "commit", t.To.Commit)
	return t
}

// recordTargets sets the deployment's release and commit when every host
// goes to the same release; otherwise they stay empty and each host's
// verify step tells where it goes.
func recordTargets(dep *Deployment, targets []RollbackTarget) {
	if len(targets) == 0 {
		return
	}
	first := targets[0].To
	for _, t := range targets[1:] {
		if t.To.Name != first.Name || t.To.Commit != first.Commit {
			dep.update(func() { dep.ReleaseName, dep.Release.Commit = "", "" })
			return
		}
	}
	dep.update(func() { dep.ReleaseName, dep.Release.Commit = first.Name, first.Commit })
}

// switchAll rolls the hosts back one after another and stops at the first
// failure.
func (d *Deployer) switchAll(ctx context.Context, dep *Deployment, runs []*hostRun, targets []RollbackTarget) error {
	var switched []int
	for i, r := range runs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rollback stopped before host %s: %w", r.res.Host, err)
		}
		if dep.stopRequested() {
			return fmt.Errorf("before host %s: %w", r.res.Host, ErrStopped)
		}
		moved, err := r.rollback(ctx, targets[i])
		if err != nil {
			if d.RollbackAll {
				for j := len(switched) - 1; j >= 0; j-- {
					back := runs[switched[j]]
					if back.putBack(ctx, targets[switched[j]]) {
						back.dep.update(func() { back.res.Status = StatusRolledBack })
					}
				}
			}
			return err
		}
		if moved {
			switched = append(switched, i)
		}
	}
	return nil
}

// rollback switches one host to its target, restarts and checks it; on a
// failure after the switch the host is put back. moved reports whether
// current was switched (a host already on its target is left alone).
func (r *hostRun) rollback(ctx context.Context, t RollbackTarget) (moved bool, err error) {
	r.dep.update(func() { r.res.Status = StatusRunning })
	defer r.dep.update(func() {
		r.res.Status = StatusSucceeded
		if err != nil {
			r.res.Status = StatusFailed
		}
		for _, s := range r.res.Steps {
			r.res.Duration += s.Duration
		}
	})
	if t.From.Name == t.To.Name {
		r.log.Info("already on the target release: left alone", "step", StepSwitch, "release", t.To.Name)
		return false, nil
	}
	if err := r.switchTo(ctx, StepSwitch, t.To); err != nil {
		// The switch may have happened before a later command failed.
		r.putBack(ctx, t)
		return false, err
	}
	if err := r.restartIn(ctx, StepRestart, r.releaseDir(t.To.Name), t.To.Commit); err != nil {
		r.putBack(ctx, t)
		return false, err
	}
	if err := r.checkHealth(ctx); err != nil {
		r.putBack(ctx, t)
		return false, err
	}
	return true, nil
}

// switchTo points current at rel (atomically) and logs it in
// revisions.log as a rollback.
func (r *hostRun) switchTo(ctx context.Context, step Step, rel ReleaseInfo) error {
	return r.step(ctx, step, func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{Args: r.switchArgs(switchRollback, rel.Name, rel.Commit, "")})
	})
}

// putBack points current back at the release it pointed at before this
// rollback and restarts that release, even when ctx was cancelled. It
// reports whether current was put back.
func (r *hostRun) putBack(ctx context.Context, t RollbackTarget) bool {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	r.log.Warn("putting the host back on its release", "release", t.From.Name)
	if r.switchTo(ctx, StepRevert, t.From) != nil {
		return false
	}
	_ = r.restartIn(ctx, StepRestartPrevious, r.releaseDir(t.From.Name), t.From.Commit)
	return true
}
