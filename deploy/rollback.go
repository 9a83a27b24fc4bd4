package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
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
//
// It logs in everywhere, then on every host at once (maxDials at a time)
// takes the host lock and reads the host's releases, in one remote command,
// and picks the host's target. It changes nothing before every host has a
// target: when any host lacks a complete one, nothing is switched anywhere
// and the error is a *TargetError naming each such host. Then the hosts
// move (rollback_move.go), each with one more command that switches
// (logged as "rollback" in revisions.log) and restarts: without a health
// check every host switches at once and then the hosts restart in the
// batches of RestartBatch, in hosts-file order; with one, each batch
// switches, restarts and is checked before the next. A failed switch puts
// every host that moved back; a failed restart or health check puts back
// its batch (restarted there), the hosts after it that switched (without a
// restart) and with RollbackAll the hosts before it; then the rollback
// stops.
// A lock held by another deployment past LockTimeout is ErrBusy, with the
// holder in the message. The locks are held from the check to the end.
// dep records everything as in Run.
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
		dep.Action, dep.Started, dep.Status, dep.Node = ActionRollback, d.now(), StatusRunning, d.Node
		dep.Release, dep.ReleaseName = Release{Branch: d.branch()}, to
		dep.Hosts = nil
		for _, h := range hosts {
			dep.Hosts = append(dep.Hosts, &HostResult{Host: h, Status: StatusQueued})
		}
	})
	log.Info("rolling back", "release", orPrevious(to), "hosts", len(hosts), "trigger", dep.Request.Trigger)
	d.lookUpTip(ctx, log, dep, d.branch())

	runs, closeAll, err := d.connectRuns(ctx, log, dep)
	defer closeAll()
	if err != nil {
		return d.finish(log, dep, err)
	}
	hs := make([]*rollbackHost, len(runs))
	for i, r := range runs {
		hs[i] = &rollbackHost{hostRun: r}
	}
	// Every host at once, as releaseAll.
	defer forEachHost(hs, len(hs), func(_ int, h *rollbackHost) { h.free() })
	targets, err := d.lockAndVerifyAll(ctx, hs, to)
	if err != nil {
		return d.finish(log, dep, err)
	}
	recordTargets(dep, targets)
	return d.finish(log, dep, d.moveAll(ctx, dep, hs))
}

func orPrevious(to string) string {
	if to == "" {
		return "previous"
	}
	return to
}

// rollbackHost is one host of a rollback.
type rollbackHost struct {
	*hostRun
	t RollbackTarget
	// a is the host's rollback.sh, started beside its lock command; nil
	// when the host stays where it is (or has not been checked). spare is
	// one not needed (the host stays): told to end, and waited for with
	// the rest at the end.
	a, spare *armed
	// moved: current was switched to the target (or may have been: a
	// failed switch step), and has not been put back; restarted: the
	// restart on the target began (and may have ended).
	moved, restarted bool
}

// free ends the host's waiting command and gives its lock back.
func (h *rollbackHost) free() {
	if h.a != nil {
		h.a.disarm()
	}
	if h.spare != nil {
		h.spare.disarm()
	}
	h.a, h.spare = nil, nil
	h.release()
}

// lockAndVerifyAll locks and checks every host, maxDials at a time,
// without waiting for a lock another deployment holds. When some are held
// it falls back to the order of a deploy: it keeps the hosts before the
// first busy one, gives back the ones after it, and takes the rest one
// after another in hosts-file order, each waiting up to LockTimeout. Two
// deployers on the same hosts then never each hold a host the other waits
// for. It returns every host's target, or a *TargetError when any host
// has none, or the first lock failure in host order.
func (d *Deployer) lockAndVerifyAll(ctx context.Context, hs []*rollbackHost, to string) ([]RollbackTarget, error) {
	errs := make([]error, len(hs))
	forEachHost(hs, maxDials, func(i int, h *rollbackHost) { errs[i] = h.lockAndVerify(ctx, to, 0) })
	busy := slices.IndexFunc(errs, func(err error) bool { return errors.Is(err, ErrBusy) })
	if busy >= 0 {
		rest := hs[busy:]
		forEachHost(rest, len(rest), func(_ int, h *rollbackHost) { h.free() })
		for i, h := range rest {
			if errs[busy+i] = h.lockAndVerify(ctx, to, d.lockWait()); errs[busy+i] != nil && !errors.Is(errs[busy+i], errNoTarget) {
				break
			}
		}
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, errNoTarget) {
			hs[i].setStatus(StatusFailed)
			return nil, err
		}
	}
	targets := make([]RollbackTarget, len(hs))
	terr := &TargetError{Release: to, Total: len(hs)}
	for i, h := range hs {
		targets[i] = h.t
		if h.t.Err != nil {
			terr.Hosts = append(terr.Hosts, h.t)
		}
	}
	if len(terr.Hosts) > 0 {
		return nil, terr
	}
	return targets, nil
}

// errNoTarget is lockAndVerify's error for a host without a usable target
// (the target's Err says why).
var errNoTarget = errors.New("no usable target")

// lockAndVerify takes the host's lock and reads its releases, in one
// remote command (waiting at most wait for the lock), and picks the host's
// target (step verify). The host's rollback.sh starts at the same time
// and waits for its word; a host that stays where it is tells it to end.
func (h *rollbackHost) lockAndVerify(ctx context.Context, to string, wait time.Duration) error {
	h.t = RollbackTarget{Host: h.res.Host}
	h.a = h.arm(ctx)
	var listing strings.Builder
	unlock, err := h.lockThen(ctx, wait, releasesScript, &listing)
	if err != nil {
		return err
	}
	h.unlock = unlock
	if h.t = h.verify(ctx, to, strings.TrimSuffix(listing.String(), "locked\n")); h.t.Err != nil {
		return errNoTarget
	}
	if h.t.From.Name == h.t.To.Name {
		h.spare, h.a = h.a, nil
		h.spare.gate.shut()
	}
	return nil
}

// verify is the host's "verify" step: read its releases from listing
// (releases.sh's output), pick the target.
func (r *hostRun) verify(ctx context.Context, to, listing string) RollbackTarget {
	t := RollbackTarget{Host: r.res.Host}
	err := r.step(ctx, StepVerify, func(ctx context.Context, out io.Writer) error {
		hr, err := parseReleases(listing)
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
