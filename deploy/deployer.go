package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
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

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
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

// Deploy resolves p to one commit and ships it to hosts in order: Run
// for a deployment asked for on the command line.
func (d *Deployer) Deploy(ctx context.Context, hosts []Host, p Push) (*Deployment, error) {
	dep := NewDeployment(Request{Trigger: "cli", Push: p}, d.now())
	err := d.Run(ctx, dep, hosts)
	return dep, err
}

// Run resolves dep's push to one commit and ships it to hosts in order. It
// stops at the first host that fails: that host keeps its current release,
// the hosts after it are not touched, and the returned error (a
// *StepError) names the host, the step and the command's own output. dep
// records everything as it happens; read it with Snapshot meanwhile.
// Cancelling ctx stops the remote command that runs; dep.Stop stops more
// gently, between steps.
func (d *Deployer) Run(ctx context.Context, dep *Deployment, hosts []Host) error {
	if err := d.check(); err != nil {
		return d.finish(d.logger(), dep, err)
	}
	start := d.now()
	log := d.logger().With("deployment", dep.ID)
	dep.update(func() {
		dep.Started, dep.Status = start, StatusRunning
		dep.Hosts = nil
		for _, h := range hosts {
			dep.Hosts = append(dep.Hosts, &HostResult{Host: h, Status: StatusQueued})
		}
	})

	rel, err := d.resolve(ctx, log, dep.Request.Push)
	if err != nil {
		return d.finish(log, dep, err)
	}
	dep.update(func() {
		dep.Release = rel
		dep.ReleaseName = ReleaseName(start, rel.Commit)
	})
	log.Info("deploying", "branch", rel.Branch, "commit", rel.Commit, "release", dep.ReleaseName, "hosts", len(hosts), "trigger", dep.Request.Trigger)

	runs := make([]*hostRun, len(dep.Hosts))
	for i, hr := range dep.Hosts {
		runs[i] = &hostRun{d: d, dep: dep, res: hr, log: log.With("host", hr.Host.String())}
	}
	// Log in everywhere first: an unknown host key or a dead host stops
	// the deployment before any host has changed.
	defer func() {
		for _, r := range runs {
			if r.conn != nil {
				r.conn.Close()
			}
		}
	}()
	if err := connectAll(ctx, runs); err != nil {
		return d.finish(log, dep, err)
	}
	for _, r := range runs {
		if err := ctx.Err(); err != nil {
			return d.finish(log, dep, fmt.Errorf("deployment stopped before host %s: %w", r.res.Host, err))
		}
		if dep.stopRequested() {
			return d.finish(log, dep, fmt.Errorf("before host %s: %w", r.res.Host, ErrStopped))
		}
		if err := r.deploy(ctx); err != nil {
			return d.finish(log, dep, err)
		}
	}
	return d.finish(log, dep, nil)
}

// maxDials bounds the logins made at once, so a big pool does not trip
// sshd's MaxStartups on a shared bastion or the deployer's file limits.
const maxDials = 16

// connectAll logs in to every host, several at a time, and returns the
// first failure in host order.
func connectAll(ctx context.Context, runs []*hostRun) error {
	errs := make([]error, len(runs))
	sem := make(chan struct{}, maxDials)
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = r.connect(ctx)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Deployer) check() error {
	var missing []string
	if d.Dialer == nil {
		missing = append(missing, "Dialer")
	}
	if d.Resolver == nil {
		missing = append(missing, "Resolver")
	}
	if d.StepTimeout <= 0 {
		missing = append(missing, "StepTimeout")
	}
	if len(missing) > 0 {
		return fmt.Errorf("deployer is missing %s", strings.Join(missing, ", "))
	}
	if err := ValidPath(d.Root); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	return nil
}

func (d *Deployer) resolve(ctx context.Context, log *slog.Logger, p Push) (Release, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.StepTimeout)
	defer cancel()
	rel, err := d.Resolver.Resolve(ctx, p)
	if err != nil {
		log.Error("resolve failed", "step", "resolve", "duration", time.Since(start), "error", err)
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
	log.Info("resolved", "step", "resolve", "duration", time.Since(start), "commit", rel.Commit)
	return rel, nil
}

func (d *Deployer) finish(log *slog.Logger, dep *Deployment, err error) error {
	var dur time.Duration
	dep.update(func() {
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

// hostRun is the deployment of one release to one host.
type hostRun struct {
	d    *Deployer
	dep  *Deployment
	res  *HostResult
	log  *slog.Logger
	conn Conn
	// root is the absolute root folder on the host, known after prepare.
	root string
}

func (r *hostRun) relDir() string { return r.root + "/releases/" + r.dep.ReleaseName }

// connect logs in to the host; the connection serves every later step.
func (r *hostRun) connect(ctx context.Context) error {
	err := r.step(ctx, "connect", func(ctx context.Context, _ io.Writer) error {
		c, err := r.d.Dialer.Dial(ctx, r.res.Host)
		r.conn = c
		return err
	})
	if err != nil {
		r.dep.update(func() { r.res.Status = StatusFailed })
	}
	return err
}

func (r *hostRun) deploy(ctx context.Context) (err error) {
	start := time.Now()
	r.dep.update(func() { r.res.Status = StatusRunning })
	defer r.dep.update(func() {
		r.res.Duration = time.Since(start)
		r.res.Status = StatusSucceeded
		if err != nil {
			r.res.Status = StatusFailed
		}
	})

	unlock, err := r.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	if err := r.prepare(ctx); err != nil {
		return err
	}
	if err := r.build(ctx); err != nil {
		r.remove(ctx)
		return err
	}
	prev, err := r.switchCurrent(ctx)
	if err != nil {
		r.remove(ctx)
		return err
	}
	if err := r.restart(ctx); err != nil {
		r.revert(ctx, prev)
		return err
	}
	return nil
}

// step runs fn as the named step: bounded by StepTimeout, timed, logged,
// recorded, and its failure turned into a *StepError with the output tail.
func (r *hostRun) step(ctx context.Context, name string, fn func(context.Context, io.Writer) error) error {
	start := time.Now()
	out := newTail(4 << 10)
	var i int
	r.dep.update(func() {
		i = len(r.res.Steps)
		r.res.Steps = append(r.res.Steps, StepResult{Name: name, Status: StatusRunning, Started: start})
	})
	var err error
	if beforeSwitch[name] && r.dep.stopRequested() {
		err = ErrStopped
	} else {
		sctx, cancel := context.WithTimeout(ctx, r.d.StepTimeout)
		err = fn(sctx, out)
		if err != nil && sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s (DEPLOY_STEP_TIMEOUT)", r.d.StepTimeout)
		}
		cancel()
	}
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) && exit.ExitStatus() == 124 {
		// coreutils timeout on the host ended it.
		err = fmt.Errorf("timed out after %s (DEPLOY_STEP_TIMEOUT)", r.d.StepTimeout)
	}
	res := StepResult{Name: name, Status: StatusSucceeded, Started: start, Duration: time.Since(start), Output: out.String(), Err: err}
	if err != nil {
		res.Status = StatusFailed
	}
	r.dep.update(func() { r.res.Steps[i] = res })
	if err != nil {
		r.log.Error("step failed", "step", name, "duration", res.Duration, "error", err, "output", res.Output)
		return &StepError{Host: r.res.Host.String(), Step: name, Err: err, Output: res.Output}
	}
	r.log.Info("step done", "step", name, "duration", res.Duration)
	return nil
}

// beforeSwitch are the steps a stopping deployment does not start: before
// the switch, stopping leaves the host as it was. Once current has moved,
// the restart (or the revert) always runs.
var beforeSwitch = map[string]bool{
	"connect": true, "lock": true, "prepare": true, "clone": true, "checkout": true, "venv": true, "pip": true,
}

// run runs cmd on the host with the step's output writer and the step
// timeout enforced on the host side too.
func (r *hostRun) run(ctx context.Context, out io.Writer, cmd Command) error {
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = out
	}
	if cmd.Timeout == 0 {
		cmd.Timeout = r.d.StepTimeout
	}
	return r.conn.Run(ctx, cmd)
}

// knownHosts is the git server's known_hosts content for gitScript.
func knownHosts(rel Release) string {
	if len(rel.GitHostKeys) == 0 {
		return ""
	}
	return strings.Join(rel.GitHostKeys, "\n") + "\n"
}

func script(s string, args ...string) []string {
	return append([]string{"sh", "-c", s, "sh"}, args...)
}

// lock takes the host lock; the returned func releases it.
func (r *hostRun) lock(ctx context.Context) (func(), error) {
	var unlock func()
	err := r.step(ctx, "lock", func(sctx context.Context, out io.Writer) error {
		wait := r.d.LockTimeout
		if wait <= 0 {
			wait = 2 * time.Minute
		}
		host, _ := os.Hostname()
		holder := fmt.Sprintf("deployment %s since %s (pushdeploy on %s, pid %d)",
			r.dep.ID, time.Now().UTC().Format(time.RFC3339), host, os.Getpid())
		stdin, hold := io.Pipe()
		locked := newSignalWriter("locked\n")
		// The lock lives as long as the host's deployment (ctx), not the
		// lock step (sctx).
		lctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			errc <- r.conn.Run(lctx, Command{
				Args:   script(lockScript, r.d.Root, strconv.Itoa(int(wait.Seconds())), holder),
				Stdin:  stdin,
				Stdout: locked,
				Stderr: out,
			})
		}()
		select {
		case <-locked.C:
			unlock = func() {
				hold.Close() // EOF ends the remote cat, which frees the lock
				select {
				case <-errc:
				case <-time.After(10 * time.Second):
				}
				cancel()
			}
			return nil
		case err := <-errc:
			hold.Close()
			cancel()
			var exit interface{ ExitStatus() int }
			if errors.As(err, &exit) && exit.ExitStatus() == 75 {
				return fmt.Errorf("%w: waited %s for the lock", ErrBusy, wait)
			}
			if err == nil {
				err = errors.New("lock command ended without taking the lock")
			}
			return err
		case <-sctx.Done():
			hold.Close()
			cancel()
			return sctx.Err()
		}
	})
	return unlock, err
}

func (r *hostRun) prepare(ctx context.Context) error {
	return r.step(ctx, "prepare", func(ctx context.Context, out io.Writer) error {
		var stdout strings.Builder
		err := r.run(ctx, out, Command{
			Args:   script(prepareScript, r.d.Root, r.dep.ReleaseName, r.d.Python),
			Stdout: io.MultiWriter(&stdout, out),
		})
		if err != nil {
			return err
		}
		root := strings.TrimSpace(stdout.String())
		if i := strings.LastIndexByte(root, '\n'); i >= 0 {
			root = root[i+1:]
		}
		if !strings.HasPrefix(root, "/") || ValidPath(root) != nil {
			return fmt.Errorf("host reported an unusable root folder %q", root)
		}
		r.root = root
		return nil
	})
}

// build makes the release: clone, checkout of the pinned commit, venv,
// requirements.
func (r *hostRun) build(ctx context.Context) error {
	rel := r.dep.Release
	err := r.step(ctx, "clone", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Dir: r.root,
			Args: script(gitScript, "git", "clone", "--quiet", "--no-checkout", "--single-branch",
				"--branch", rel.Branch, "--", rel.RepoURL, "releases/"+r.dep.ReleaseName),
			Stdin:        strings.NewReader(knownHosts(rel)),
			ForwardAgent: r.d.LendGitKey,
		})
	})
	if err != nil {
		return err
	}
	steps := []struct {
		name string
		cmd  Command
	}{
		{"checkout", Command{Dir: r.relDir(), Args: []string{"git", "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", rel.Commit}}},
		{"venv", Command{Dir: r.relDir(), Args: []string{r.d.Python, "-m", "venv", "venv"}}},
		{"pip", Command{Dir: r.relDir(), Args: script(pipScript)}},
	}
	for _, s := range steps {
		if err := r.step(ctx, s.name, func(ctx context.Context, out io.Writer) error {
			return r.run(ctx, out, s.cmd)
		}); err != nil {
			return err
		}
	}
	return nil
}

// switchCurrent points current at the new release and returns what it
// pointed at before ("" when there was nothing).
func (r *hostRun) switchCurrent(ctx context.Context) (string, error) {
	var prev string
	err := r.step(ctx, "switch", func(ctx context.Context, out io.Writer) error {
		var stdout strings.Builder
		err := r.run(ctx, out, Command{
			Args:   script(switchScript, r.root, r.dep.ReleaseName, r.dep.Release.Commit, r.dep.ID, "deploy"),
			Stdout: io.MultiWriter(&stdout, out),
		})
		prev = strings.TrimSpace(stdout.String())
		return err
	})
	return prev, err
}

func (r *hostRun) restartEnv(relDir, commit string) []string {
	return []string{
		"RELEASE_DIR=" + relDir,
		"CURRENT_DIR=" + r.root + "/current",
		"COMMIT=" + commit,
		"BRANCH=" + r.dep.Release.Branch,
		"DEPLOYMENT_ID=" + r.dep.ID,
		"APP_PROCESSES=" + strconv.Itoa(r.d.AppProcesses),
		"APP_THREADS=" + strconv.Itoa(r.d.AppThreads),
	}
}

func (r *hostRun) restart(ctx context.Context) error {
	if r.d.RestartCmd == "" {
		return nil
	}
	return r.step(ctx, "restart", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Dir:  r.relDir(),
			Env:  r.restartEnv(r.relDir(), r.dep.Release.Commit),
			Args: []string{"sh", "-c", r.d.RestartCmd},
		})
	})
}

// cleanupCtx gives cleanup a chance even when the deployment's own context
// was cancelled (Ctrl-C, SIGTERM): a half-built release must not stay.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
}

// remove deletes the half-built release after a failure before the switch.
func (r *hostRun) remove(ctx context.Context) {
	if r.root == "" {
		return
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	_ = r.step(ctx, "cleanup", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{Args: script(removeScript, r.root, r.dep.ReleaseName)})
	})
}

// revert puts current back after a failed restart, restarts the previous
// release, and deletes the new one.
func (r *hostRun) revert(ctx context.Context, prev string) {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if prev != "" {
		name := strings.TrimPrefix(prev, "releases/")
		if !strings.HasPrefix(prev, "releases/") || ValidReleaseName(name) != nil {
			r.log.Error("not reverting: current pointed at an unexpected target", "target", prev)
			return
		}
	}
	var prevCommit strings.Builder
	if err := r.step(ctx, "revert", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Args:   script(revertScript, r.root, prev, r.dep.ReleaseName, r.dep.ID),
			Stdout: io.MultiWriter(&prevCommit, out),
		})
	}); err != nil || prev == "" || r.d.RestartCmd == "" {
		return
	}
	prevDir := r.root + "/" + prev
	_ = r.step(ctx, "restart-previous", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Dir:  prevDir,
			Env:  r.restartEnv(prevDir, strings.TrimSpace(prevCommit.String())),
			Args: []string{"sh", "-c", r.d.RestartCmd},
		})
	})
}
