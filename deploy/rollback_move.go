package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// A rollback moves its hosts once each has a target and its rollback.sh
// waits for its word (rollback_switch.go), in one of two orders:
//
//   - Without a health check, every host switches at once, so the pool
//     is on two releases for about one round trip; then the hosts restart
//     in batches of RestartBatch, in hosts-file order. Nothing is learnt
//     between two restarts that could keep a bad release from a host:
//     only a health check could, so there is no reason to make each
//     host's switch wait for the restarts before it.
//   - With a health check (HealthURL), a batch switches, restarts and is
//     checked before the next batch switches, so a release that fails its
//     check reaches one batch only. As in a deploy, every host of a batch
//     has switched before any of them restarts; a batch of one host gets
//     its switch and restart in one word, a round trip fewer.
//
// Failures are undone as a deploy's are (phases.go):
//
//   - a switch that fails, on any host, puts back every host that moved
//     (restarted on its previous release when it had been restarted on
//     the target), and nothing more happens;
//   - a restart or health check that fails puts back its batch (as a
//     whole: its hosts restarted together) and restarts it there, puts
//     back without a restart the hosts after it that switched but did not
//     restart, and with RollbackAll puts back the hosts before it too
//     (restarted there).

// moveAll moves the hosts in the order above and stops at the first
// failure.
func (d *Deployer) moveAll(ctx context.Context, dep *Deployment, hs []*rollbackHost) error {
	if len(hs) == 0 {
		return nil
	}
	if d.HealthURL == "" {
		return d.switchThenRestart(ctx, dep, hs)
	}
	return d.moveInBatches(ctx, dep, hs)
}

// switchThenRestart switches every host at once, then restarts them batch
// after batch.
func (d *Deployer) switchThenRestart(ctx context.Context, dep *Deployment, hs []*rollbackHost) error {
	if err := beforeMove(ctx, dep, "host "+hs[0].res.Host.String()); err != nil {
		return err
	}
	errs := make([]error, len(hs))
	forEachHost(hs, len(hs), func(i int, h *rollbackHost) { errs[i] = h.switchOnly(ctx) })
	if i := slices.IndexFunc(errs, isError); i >= 0 {
		d.putBack(ctx, hs)
		return errs[i]
	}
	size := d.RestartBatch.Size(len(hs))
	for first := 0; first < len(hs); first += size {
		batch := hs[first:min(first+size, len(hs))]
		where := "the restart of host " + batch[0].res.Host.String()
		if err := dep.fenced(); err != nil {
			// As a deploy's fence: another deployer may be deploying the
			// app, so nothing moves any more, not even back.
			return fmt.Errorf("rollback stopped before %s: %w", where, err) // see Deployment.Fence
		}
		if err := stopped(ctx, dep, where); err != nil {
			// The hosts not restarted yet still run the release they are
			// put back on: a switch is all it takes, and every host ends
			// up as consistent as a rollback stopped before its switch.
			d.putBack(ctx, hs[first:])
			return err
		}
		forEachHost(batch, len(batch), func(i int, h *rollbackHost) { errs[first+i] = h.restartThere(ctx, false) })
		if i := slices.IndexFunc(errs[first:first+len(batch)], isError); i >= 0 {
			return d.batchFailed(ctx, hs, first, errs[first+i])
		}
	}
	return nil
}

// moveInBatches moves the hosts batch after batch, each switched,
// restarted and checked before the next batch switches.
func (d *Deployer) moveInBatches(ctx context.Context, dep *Deployment, hs []*rollbackHost) error {
	size := d.RestartBatch.Size(len(hs))
	errs := make([]error, len(hs))
	for first := 0; first < len(hs); first += size {
		batch := hs[first:min(first+size, len(hs))]
		if err := beforeMove(ctx, dep, "host "+batch[0].res.Host.String()); err != nil {
			return err
		}
		if len(batch) == 1 {
			errs[first] = batch[0].move(ctx)
		} else {
			forEachHost(batch, len(batch), func(i int, h *rollbackHost) { errs[first+i] = h.switchOnly(ctx) })
			if !slices.ContainsFunc(errs[first:first+len(batch)], isError) {
				forEachHost(batch, len(batch), func(i int, h *rollbackHost) { errs[first+i] = h.restartThere(ctx, true) })
			}
		}
		if i := slices.IndexFunc(errs[first:first+len(batch)], isSwitchError); i >= 0 {
			d.putBack(ctx, hs)
			return errs[first+i]
		}
		if i := slices.IndexFunc(errs[first:first+len(batch)], isError); i >= 0 {
			return d.batchFailed(ctx, hs, first, errs[first+i])
		}
	}
	return nil
}

func isError(err error) bool { return err != nil }

// isSwitchError reports whether err is a failed switch step.
func isSwitchError(err error) bool {
	var se *StepError
	return errors.As(err, &se) && se.Step == StepSwitch
}

// beforeMove is why no host should move from where on: ctx done, a stop
// asked for, or the claim on the app lost (see Deployment.Fence).
func beforeMove(ctx context.Context, dep *Deployment, where string) error {
	if err := stopped(ctx, dep, where); err != nil {
		return err
	}
	if err := dep.fenced(); err != nil {
		return fmt.Errorf("rollback stopped before %s: %w", where, err)
	}
	return nil
}

// stopped is why the rollback stops before where: ctx done or a stop
// asked for.
func stopped(ctx context.Context, dep *Deployment, where string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rollback stopped before %s: %w", where, err)
	}
	if dep.stopRequested() {
		return fmt.Errorf("before %s: %w", where, dep.stopError())
	}
	return nil
}

// batchFailed undoes a restart or health check that failed in the batch
// starting at hs[first]: the batch and every host after it that moved go
// back (with RollbackAll, every host that moved), and it returns err.
func (d *Deployer) batchFailed(ctx context.Context, hs []*rollbackHost, first int, err error) error {
	back := hs[first:]
	if d.RollbackAll {
		back = hs
	}
	d.putBack(ctx, back)
	return err
}

// putBack puts the hosts of hs that moved back where they were, even when
// ctx was cancelled: first, all at once, the ones not restarted on the
// target (their app still runs the release current goes back to, so a
// switch is all they need), then the restarted ones one after another, the
// last first, each switched back and restarted there.
func (d *Deployer) putBack(ctx context.Context, hs []*rollbackHost) {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	var switched, restarted []*rollbackHost
	for _, h := range hs {
		switch {
		case !h.moved:
		case h.restarted:
			restarted = append(restarted, h)
		default:
			switched = append(switched, h)
		}
	}
	forEachHost(switched, len(switched), func(_ int, h *rollbackHost) { h.goBack(ctx) })
	for _, h := range slices.Backward(restarted) {
		h.goBack(ctx)
	}
}

// switchOnly switches the host to its target (step switch); its
// rollback.sh then waits for the word to restart (restartThere).
func (h *rollbackHost) switchOnly(ctx context.Context) error {
	if h.a == nil {
		return nil // already on the target: restartThere says so
	}
	h.setStatus(StatusRunning)
	// A failed switch may have moved current before it failed.
	h.moved = true
	if err := h.switchStep(ctx, h.a, StepSwitch, wordSwitch, h.t.To); err != nil {
		h.setStatus(StatusFailed)
		return err
	}
	return nil
}

// restartThere restarts the host on the target it switched to (step
// restart), with the rollback.sh that switched it, and with check its
// health too.
func (h *rollbackHost) restartThere(ctx context.Context, check bool) error {
	if h.a == nil {
		h.leftAlone()
		return nil
	}
	a := h.a
	h.a = nil
	defer a.disarm()
	h.restarted = h.d.RestartCmd != ""
	err := h.restartStep(ctx, a, StepRestart, wordRestart)
	if err == nil && check {
		err = h.checkHealth(ctx)
	}
	if err != nil {
		h.setStatus(StatusFailed)
		return err
	}
	h.setStatus(StatusSucceeded)
	return nil
}

// move switches the host to its target and restarts it there (one
// command), then checks its health.
func (h *rollbackHost) move(ctx context.Context) (err error) {
	if h.a == nil {
		h.leftAlone()
		return nil
	}
	h.setStatus(StatusRunning)
	defer func() {
		if err != nil {
			h.setStatus(StatusFailed)
		} else {
			h.setStatus(StatusSucceeded)
		}
	}()
	a := h.a
	h.a = nil
	defer a.disarm()
	// A failed switch may have moved current before it failed.
	h.moved = true
	err = h.switchStep(ctx, a, StepSwitch, wordGo, h.t.To)
	// The restart follows the switch on the host without a word from
	// here: it began if the script got that far.
	h.restarted = h.d.RestartCmd != "" && (err == nil || a.marked())
	if err != nil {
		return err
	}
	if err := h.restartStep(ctx, a, StepRestart, ""); err != nil {
		return err
	}
	return h.checkHealth(ctx)
}

// leftAlone records a host already on its target.
func (h *rollbackHost) leftAlone() {
	h.log.Info("already on the target release: left alone", "step", StepSwitch, "release", h.t.To.Name)
	h.setStatus(StatusSucceeded)
}

// goBack points current back at the release it pointed at before this
// rollback (step revert) and, when the host was restarted on the target,
// restarts that release (step restart-previous), with a command of its
// own: the host's rollback.sh, which may still wait for its restart, is
// ended first. A host put back is rolled back (a failed one stays
// failed); one that could not be is failed.
func (h *rollbackHost) goBack(ctx context.Context) {
	if h.a != nil {
		h.a.disarm()
		h.a = nil
	}
	h.log.Warn("putting the host back on its release", "release", h.t.From.Name, "restart", h.restarted)
	a := h.arm(ctx)
	defer a.disarm()
	word := wordSwitch
	if h.restarted {
		word = wordGo
	}
	if err := h.switchStep(ctx, a, StepRevert, word, h.t.From); err != nil {
		h.setStatus(StatusFailed)
		return
	}
	h.moved = false
	h.setStatus(StatusRolledBack)
	if h.restarted {
		_ = h.restartStep(ctx, a, StepRestartPrevious, "")
	}
}
