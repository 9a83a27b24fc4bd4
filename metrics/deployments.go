package metrics

import (
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

var _ deploy.Observer = (*Collector)(nil)

// Observe updates the metrics from one deployment event: a step's end
// feeds the step histogram, a deployment's end the counters, the duration
// histogram, the last-success gauges and the host commits. It only takes a
// mutex and updates memory, so it returns at once on the deployment's
// goroutine.
func (c *Collector) Observe(ev deploy.Event) {
	switch ev.Kind {
	case deploy.EventStep:
		if ev.Status != deploy.StatusRunning {
			c.stepTime.WithLabelValues(appLabel(ev.App), string(ev.Step), string(ev.Status)).Observe(ev.Duration.Seconds())
		}
	case deploy.EventDeployment:
		if d := ev.Deployment; d != nil && ended(d.Status) {
			c.deploymentEnded(d, ev.Time)
		}
	}
}

// ended reports whether s is a deployment's last status. A deployment
// tells each status once, so its end is counted once.
func ended(s deploy.Status) bool {
	switch s {
	case deploy.StatusSucceeded, deploy.StatusFailed, deploy.StatusCancelled, deploy.StatusInterrupted, deploy.StatusRefused:
		return true
	}
	return false
}

func (c *Collector) deploymentEnded(d *deploy.Deployment, now time.Time) {
	action := string(d.Action)
	if action == "" {
		action = string(deploy.ActionDeploy)
	}
	app := appLabel(d.App)
	c.deployments.WithLabelValues(app, action, string(d.Status)).Inc()
	if d.Started.IsZero() {
		return // cancelled while waiting, or refused: it never ran
	}
	c.deploymentTime.WithLabelValues(app, action, string(d.Status)).Observe(d.Finished.Sub(d.Started).Seconds())
	switch d.Status {
	case deploy.StatusSucceeded:
		c.lastSuccess.WithLabelValues(app, action).Set(float64(d.Finished.UnixNano()) / 1e9)
		c.lastFailed.WithLabelValues(app, action).Set(0)
	case deploy.StatusFailed:
		c.lastFailed.WithLabelValues(app, action).Set(1)
	}
	c.moveHosts(app, d, now)
}

// placement is where a deployment left one host.
type placement int

const (
	unchanged placement = iota // on the commit it was on before
	onTarget                   // on the deployment's commit
	unknown                    // a switch or a revert failed: it may be either
)

// place works out from a host's steps where the deployment left it:
//   - a successful switch not followed by a successful revert puts it on
//     the deployment's release (for a deploy that ended in failure too: with
//     DEPLOY_ROLLBACK_ON_FAILURE=host the hosts before the failing one keep
//     the new release);
//   - a rollback host that succeeded without switching was already there;
//   - a failed switch or revert leaves it unknown;
//   - anything else (failed while preparing, skipped, sent back) leaves it
//     where it was.
func place(h *deploy.HostResult, rollback bool) placement {
	switched, reverted, failed := false, false, false
	for _, s := range h.Steps {
		switch s.Name {
		case deploy.StepSwitch, deploy.StepRevert:
		default:
			continue
		}
		switch {
		case s.Status == deploy.StatusFailed:
			failed = true
		case s.Status == deploy.StatusSucceeded && s.Name == deploy.StepSwitch:
			switched, failed = true, false
		case s.Status == deploy.StatusSucceeded && s.Name == deploy.StepRevert:
			reverted, failed = true, false
		}
	}
	switch {
	case failed:
		return unknown
	case switched && !reverted:
		return onTarget
	case rollback && !switched && !reverted && h.Status == deploy.StatusSucceeded:
		return onTarget
	}
	return unchanged
}

// moveHosts updates pushdeploy_host_commit_info for the hosts d moved. A
// rollback whose hosts went to different releases records no single
// commit: its hosts' series are removed (the commit is unknown) until the
// next deployment or seed.
func (c *Collector) moveHosts(app string, d *deploy.Deployment, now time.Time) {
	target := hostCommit{commit: d.Release.Commit, release: d.ReleaseName}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range d.Hosts {
		k := hostKey{app, h.Host.String()}
		switch place(h, d.Action == deploy.ActionRollback) {
		case unchanged:
			continue
		case onTarget:
			if target.commit != "" {
				c.setLocked(k, target)
			} else {
				c.forgetLocked(k)
			}
		case unknown:
			c.forgetLocked(k)
		}
		c.changed[k] = now
	}
	c.agreeLocked(app)
}

// SeedHosts sets the commit of each host of app that was read (Err ==
// nil) and has a current release, unless a deployment has changed that
// host's series since asOf (the time the hosts were read: what they tell
// may already be out of date). serve calls it at start for each app, from
// the releases on the hosts, so that the series exist before the first
// deployment.
func (c *Collector) SeedHosts(app string, hs []deploy.HostReleases, asOf time.Time) {
	app = appLabel(app)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hs {
		k := hostKey{app, h.Host.String()}
		if h.Err != nil || h.Current == "" || c.changed[k].After(asOf) {
			continue
		}
		rel, ok := h.Release(h.Current)
		if !ok || rel.Commit == "" {
			c.forgetLocked(k)
			continue
		}
		c.setLocked(k, hostCommit{commit: rel.Commit, release: rel.Name})
	}
	c.agreeLocked(app)
}

// setLocked makes hc the host's only series; c.mu is held.
func (c *Collector) setLocked(k hostKey, hc hostCommit) {
	if old, ok := c.hosts[k]; ok {
		if old == hc {
			return
		}
		c.hostCommit.DeleteLabelValues(k.app, k.host, old.commit, old.release)
	}
	c.hosts[k] = hc
	c.hostCommit.WithLabelValues(k.app, k.host, hc.commit, hc.release).Set(1)
}

// forgetLocked removes the host's series; c.mu is held.
func (c *Collector) forgetLocked(k hostKey) {
	if old, ok := c.hosts[k]; ok {
		c.hostCommit.DeleteLabelValues(k.app, k.host, old.commit, old.release)
		delete(c.hosts, k)
	}
}

// agreeLocked updates app's gauges computed from its host commits; c.mu
// is held.
func (c *Collector) agreeLocked(app string) {
	commits := map[string]bool{}
	known := 0
	for k, hc := range c.hosts {
		if k.app == app {
			commits[hc.commit] = true
			known++
		}
	}
	disagree := 0.0
	if len(commits) > 1 {
		disagree = 1
	}
	c.hostsDisagree.WithLabelValues(app).Set(disagree)
	c.hostCommitsKnown.WithLabelValues(app).Set(float64(known))
}
