package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Deployer ships a release to hosts, one after another, in order. Fill its
// fields once; Deploy may then be called repeatedly (not concurrently on the
// same hosts: the host lock makes a second caller wait).
type Deployer struct {
	Dialer   Dialer
	Resolver Resolver
	Logger   *slog.Logger

	// Branch is the release branch (used by Check; Deploy takes it from
	// the Push).
	Branch string
	// Root is the root folder on every host (relative: to the login
	// user's home).
	Root string
	// Python builds each release's venv on the hosts.
	Python string
	// RestartCmd runs on each host after its switch; empty: none.
	RestartCmd   string
	AppProcesses int
	AppThreads   int
	// LendGitKey lends the deploy key to the clone command through agent
	// forwarding; false: hosts clone with their own keys.
	LendGitKey bool
	// StepTimeout bounds every step on a host; LockTimeout how long a host
	// lock held by another deployer is waited for.
	StepTimeout time.Duration
	LockTimeout time.Duration

	// SharedPaths are linked from <root>/shared/ into each release before
	// its switch.
	SharedPaths []string
	// KeepReleases is how many releases each host keeps after a successful
	// deploy (never fewer than current and the one before it); 0 keeps all.
	KeepReleases int
	// HealthURL, when set, is polled after each host's switch and restart
	// until it answers 2xx, for at most HealthTimeout; "{host}" in it is
	// replaced by the host's address.
	HealthURL     string
	HealthTimeout time.Duration
	// RollbackAll sends every host switched by a failed deployment back to
	// its previous release, not only the host that failed.
	RollbackAll bool
	// HTTPClient makes the health checks; nil means a default client.
	HTTPClient *http.Client

	// Parallel is how many hosts are prepared at once (0 or 1: one after
	// another). Switches always happen one host after another.
	Parallel int
	// RestartBatch is how many hosts are restarted, health-checked and
	// given their after-switch hook at once (with a health check: also
	// switched together, batch after batch); the zero value is one at a
	// time. Never all hosts of a pool of two or more: see its Size.
	RestartBatch RestartBatch
	// VenvReuse shares one venv among the releases of a host that have
	// the same requirements.txt and Python; false builds one per release.
	VenvReuse bool
	// Archiver, when set, ships each release as a tar stream from the
	// deployer (DEPLOY_FETCH=push): hosts need no git access. Nil: each
	// host fetches into its own mirror of the repository.
	Archiver Archiver

	// Node names this deployer in the deployments it runs
	// (Deployment.Node): DEPLOY_NODE_NAME, else HOSTNAME:PID.
	Node string

	// Observer, when set, hears every event of the deployments this
	// Deployer runs (unless a deployment has an observer already).
	Observer Observer

	// Now returns the current time, which names releases and times
	// deployments and their steps; nil means time.Now.
	Now func() time.Time
}

// observe attaches d.Observer to dep unless dep has one.
func (d *Deployer) observe(dep *Deployment) {
	if d.Observer != nil && !dep.hasObserver() {
		dep.Observe(d.Observer)
	}
}

func (d *Deployer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deployer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Run resolves dep's push to one commit and ships it to hosts in order. It
// stops at the first host that fails: that host keeps its current release,
// the hosts after it are not touched, and the returned error (a
// *StepError) names the host, the step and the command's own output. dep
// records everything as it happens; read it with Snapshot meanwhile.
// Cancelling ctx stops the remote command that runs; dep.Stop stops more
// gently, between steps.
func (d *Deployer) Run(ctx context.Context, dep *Deployment, hosts []Host) error {
	d.observe(dep)
	if err := d.check(); err != nil {
		return d.finish(d.logger(), dep, err)
	}
	start := d.now()
	log := d.logger().With("deployment", dep.ID)
	dep.update(func() {
		dep.Started, dep.Status, dep.Node = start, StatusRunning, d.Node
		dep.Hosts = nil
		for _, h := range hosts {
			dep.Hosts = append(dep.Hosts, &HostResult{Host: h, Status: StatusQueued})
		}
	})
	if dep.Request.Push.Commit != "" {
		d.lookUpTip(ctx, log, dep, dep.Request.Push.Branch)
	}

	// Log in everywhere while the commit is resolved: the two wait on
	// different servers, and a login changes nothing on a host. An
	// unknown host key or a dead host still stops the deployment before
	// any host has changed; so does a commit that cannot be resolved,
	// before any command runs.
	// The logins' context ends with the deployment (a jump host's
	// connection may live in it), or at once when the commit is not
	// resolved: a host that does not answer need not be waited for.
	lctx, stopLogins := context.WithCancel(ctx)
	defer stopLogins()
	logins := make(chan connected, 1)
	go func() {
		var c connected
		c.runs, c.closeAll, c.err = d.connectRuns(lctx, log, dep)
		logins <- c
	}()
	rel, err := d.resolve(ctx, log, dep.Request.Push)
	if err != nil {
		stopLogins()
	}
	c := <-logins
	defer c.closeAll()
	if err != nil {
		return d.finish(log, dep, err)
	}
	dep.update(func() {
		dep.Release = rel
		if dep.Request.Push.Commit == "" {
			dep.BranchTip = rel.Commit // the tip is what ships
		}
		dep.ReleaseName = ReleaseName(start, rel.Commit)
	})
	log.Info("deploying", "branch", rel.Branch, "commit", rel.Commit, "release", dep.ReleaseName, "hosts", len(hosts), "trigger", dep.Request.Trigger)

	runs := c.runs
	if c.err != nil {
		return d.finish(log, dep, c.err)
	}
	defer releaseAll(runs)
	return d.finish(log, dep, d.rollout(ctx, log, dep, runs))
}

// releaseAll ends every host's remote commands and gives its lock back,
// all hosts at once: each waits a round trip for its command to end, which
// one host after another would add up to a round trip per host after the
// deployment is over.
func releaseAll(runs []*hostRun) {
	forEachHost(runs, len(runs), func(_ int, r *hostRun) { r.release() })
}

// connected is what connectRuns returned.
type connected struct {
	runs     []*hostRun
	closeAll func()
	err      error
}

// connectRuns makes a hostRun per host of dep and logs in to every host.
// The returned func closes the connections made, whatever the error.
func (d *Deployer) connectRuns(ctx context.Context, log *slog.Logger, dep *Deployment) ([]*hostRun, func(), error) {
	runs := make([]*hostRun, len(dep.Hosts))
	for i, hr := range dep.Hosts {
		runs[i] = &hostRun{d: d, dep: dep, res: hr, log: log.With("host", hr.Host.String())}
	}
	closeAll := func() {
		for _, r := range runs {
			if r.conn != nil {
				r.conn.Close()
			}
		}
	}
	return runs, closeAll, connectAll(ctx, runs)
}

// connectAll logs in to every host, maxDials at a time, and returns the
// first failure in host order.
func connectAll(ctx context.Context, runs []*hostRun) error {
	errs := make([]error, len(runs))
	forEachHost(runs, maxDials, func(i int, r *hostRun) { errs[i] = r.connect(ctx) })
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Deployer) check() error {
	if d.Resolver == nil {
		return errors.New("deployer is missing Resolver")
	}
	return d.checkHostsOnly()
}

func (d *Deployer) resolve(ctx context.Context, log *slog.Logger, p Push) (Release, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.StepTimeout)
	defer cancel()
	rel, err := d.Resolver.Resolve(ctx, p)
	if err != nil {
		log.Error("resolve failed", "step", StepResolve, "duration", time.Since(start), "error", err)
		return Release{}, fmt.Errorf("resolve: %w", err)
	}
	// The resolver is trusted to check, but the commit goes into remote
	// commands and folder names: check its form here too.
	if err := ValidCommit(rel.Commit); err != nil {
		return Release{}, fmt.Errorf("resolve: %w", err)
	}
	if err := ValidBranch(rel.Branch); err != nil {
		return Release{}, fmt.Errorf("resolve: %w", err)
	}
	log.Info("resolved", "step", StepResolve, "duration", time.Since(start), "commit", rel.Commit)
	return rel, nil
}

func (d *Deployer) finish(log *slog.Logger, dep *Deployment, err error) error {
	var dur time.Duration
	tip := dep.awaitTip()
	dep.update(func() {
		if tip != "" {
			dep.BranchTip = tip
		}
		dep.Finished = d.now()
		if dep.Started.IsZero() {
			dep.Started = dep.Finished
		}
		dur = dep.Finished.Sub(dep.Started)
		dep.Err = err
		dep.Status = StatusSucceeded
		if err != nil {
			dep.Status = StatusFailed
		}
		for _, h := range dep.Hosts {
			if h.Status == StatusQueued {
				h.Status = StatusSkipped
			}
		}
	})
	if err != nil {
		log.Error("deployment failed", "duration", dur, "error", err)
		return err
	}
	log.Info("deployment succeeded", "duration", dur, "commit", dep.Release.Commit, "release", dep.ReleaseName)
	return nil
}
