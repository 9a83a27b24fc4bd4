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
			c.stepTime.WithLabelValues(string(ev.Step), string(ev.Status)).Observe(ev.Duration.Seconds())
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
	case deploy.StatusSucceeded, deploy.StatusFailed, deploy.StatusCancelled, deploy.StatusInterrupted:
		return true
	}
	return false
}

func (c *Collector) deploymentEnded(d *deploy.Deployment, now time.Time) {
	action := string(d.Action)
	if action == "" {
		action = string(deploy.ActionDeploy)
	}
	c.deployments.WithLabelValues(action, string(d.Status)).Inc()
	if d.Started.IsZero() {
		return // cancelled while waiting: it never ran
	}
	c.deploymentTime.WithLabelValues(action, string(d.Status)).Observe(d.Finished.Sub(d.Started).Seconds())
	switch d.Status {
	case deploy.StatusSucceeded:
		c.lastSuccess.WithLabelValues(action).Set(float64(d.Finished.UnixNano()) / 1e9)
		c.lastFailed.WithLabelValues(action).Set(0)
	case deploy.StatusFailed:
		c.lastFailed.WithLabelValues(action).Set(1)
	}
	c.moveHosts(d, now)
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
func (c *Collector) moveHosts(d *deploy.Deployment, now time.Time) {
	target := hostCommit{commit: d.Release.Commit, release: d.ReleaseName}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range d.Hosts {
		name := h.Host.String()
		switch place(h, d.Action == deploy.ActionRollback) {
		case unchanged:
			continue
		case onTarget:
			if target.commit != "" {
				c.setLocked(name, target)
			} else {
				c.forgetLocked(name)
			}
		case unknown:
			c.forgetLocked(name)
		}
		c.changed[name] = now
	}
	c.agreeLocked()
}

// SeedHosts sets the commit of each host that was read (Err == nil) and
// has a current release, unless a deployment has changed that host's
// series since asOf (the time the hosts were read: what they tell may
// already be out of date). serve calls it at start, from the releases on
// the hosts, so that the series exist before the first deployment.
func (c *Collector) SeedHosts(hs []deploy.HostReleases, asOf time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hs {
		name := h.Host.String()
		if h.Err != nil || h.Current == "" || c.changed[name].After(asOf) {
			continue
		}
		rel, ok := h.Release(h.Current)
		if !ok || rel.Commit == "" {
			c.forgetLocked(name)
			continue
		}
		c.setLocked(name, hostCommit{commit: rel.Commit, release: rel.Name})
	}
	c.agreeLocked()
}

// setLocked makes hc host's only series; c.mu is held.
func (c *Collector) setLocked(host string, hc hostCommit) {
	if old, ok := c.hosts[host]; ok {
		if old == hc {
			return
		}
		c.hostCommit.DeleteLabelValues(host, old.commit, old.release)
	}
	c.hosts[host] = hc
	c.hostCommit.WithLabelValues(host, hc.commit, hc.release).Set(1)
}

// forgetLocked removes host's series; c.mu is held.
func (c *Collector) forgetLocked(host string) {
	if old, ok := c.hosts[host]; ok {
		c.hostCommit.DeleteLabelValues(host, old.commit, old.release)
		delete(c.hosts, host)
	}
}

// agreeLocked updates the gauges computed from the host commits; c.mu is
// held.
func (c *Collector) agreeLocked() {
	commits := map[string]bool{}
	for _, hc := range c.hosts {
		commits[hc.commit] = true
	}
	disagree := 0.0
	if len(commits) > 1 {
		disagree = 1
	}
	c.hostsDisagree.Set(disagree)
	c.hostCommitsKnown.Set(float64(len(c.hosts)))
}
