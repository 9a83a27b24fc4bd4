package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// hostRun is the deployment of one release to one host.
type hostRun struct {
	d    *Deployer
	dep  *Deployment
	res  *HostResult
	log  *slog.Logger
	conn Conn
	// root is the absolute root folder on the host, known after prepare.
	root string
	// prev is what current pointed at before this deployment switched it
	// ("releases/<name>", or "" on a first deploy); switched says that the
	// switch happened and has not been undone.
	prev     string
	switched bool
	// prepared: the release folder exists (it is removed on failure);
	// restarted: the restart command ran for the new release.
	prepared, restarted bool
	// unlock gives the host lock back; set while it is held (rollback).
	unlock func()
	// phase is the host's prepare command (preparerun.go), which holds
	// the host lock of a deployment once it has taken it.
	phase *markedRun
	// retained is closed once the host's retention, which runs on after
	// its activation (activate), has ended; nil when none runs.
	retained chan struct{}
}

// connect logs in to the host; the connection serves every later step.
func (r *hostRun) connect(ctx context.Context) error {
	err := r.step(ctx, StepConnect, func(ctx context.Context, _ io.Writer) error {
		c, err := r.d.Dialer.Dial(ctx, r.res.Host)
		r.conn = c
		return err
	})
	if err != nil {
		r.dep.update(func() { r.res.Status = StatusFailed })
	}
	return err
}

// step runs fn as the named step: bounded by StepTimeout, timed, logged,
// recorded, and its failure turned into a *StepError with the output tail.
func (r *hostRun) step(ctx context.Context, name Step, fn func(context.Context, io.Writer) error) error {
	return r.stepWith(ctx, name, beforeSwitch[name], fn)
}

// stepWith is step, which a stop asked for skips when stoppable.
func (r *hostRun) stepWith(ctx context.Context, name Step, stoppable bool, fn func(context.Context, io.Writer) error) error {
	start := r.d.now()
	out := newTail(4 << 10)
	var i int
	r.dep.update(func() {
		i = len(r.res.Steps)
		r.res.Steps = append(r.res.Steps, StepResult{Name: name, Status: StatusRunning, Started: start})
	})
	var err error
	if stoppable && r.dep.stopRequested() {
		err = r.dep.stopError()
	} else {
		sctx, cancel := context.WithTimeout(ctx, r.d.StepTimeout)
		var w io.Writer = out
		var lines *lineWriter
		if r.dep.hasObserver() {
			lines = &lineWriter{dep: r.dep, host: r.res.Host.String(), step: name}
			w = io.MultiWriter(out, lines)
		}
		err = fn(sctx, w)
		if lines != nil {
			lines.flush()
		}
		if err != nil && sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s (DEPLOY_STEP_TIMEOUT)", r.d.StepTimeout)
		}
		cancel()
	}
	if status, ok := exitStatus(err); ok && status == 124 {
		// coreutils timeout on the host ended it.
		err = fmt.Errorf("timed out after %s (DEPLOY_STEP_TIMEOUT)", r.d.StepTimeout)
	}
	res := StepResult{Name: name, Status: StatusSucceeded, Started: start, Duration: r.d.now().Sub(start), Output: out.String(), Err: err}
	if err != nil {
		res.Status = StatusFailed
	}
	r.dep.update(func() {
		r.res.Steps[i] = res
		r.res.Duration += res.Duration
	})
	if err != nil {
		r.log.Error("step failed", "step", name, "duration", res.Duration, "error", err, "output", res.Output)
		return &StepError{Host: r.res.Host.String(), Step: name, Err: err, Output: res.Output}
	}
	if out := strings.TrimSpace(res.Output); reportSteps[name] && out != "" && out != noHook(name) {
		r.log.Info("step done", "step", name, "duration", res.Duration, "output", res.Output)
		return nil
	}
	r.log.Info("step done", "step", name, "duration", res.Duration)
	return nil
}

// reportSteps are the steps whose output is logged even when they succeed:
// what a repository hook prints (migrations applied, files collected) is
// the app's own report, and the health check's attempts show how long the
// app took to come up. Other steps' output (pip's, say) is kept with the
// step and logged when it fails.
var reportSteps = map[Step]bool{StepBeforeSwitch: true, StepAfterSwitch: true, StepHealth: true}

// noHook is what phase.sh says when the release has no such hook: kept
// with the step, not worth a line per host in the progress.
func noHook(step Step) string { return "no .pushdeploy/" + string(step) + " in this release" }

// beforeSwitch are the steps a stopping deployment does not start: before
// the switch, stopping leaves the host as it was. Once current has moved,
// the restart (or the revert) always runs.
var beforeSwitch = map[Step]bool{
	StepConnect: true, StepLock: true, StepPrepare: true, StepFetch: true, StepPipCopy: true, StepUpload: true, StepCheckout: true, StepVenv: true, StepPip: true,
	StepShared: true, StepBeforeSwitch: true,
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
	if cmd.Hold == "" && r.root != "" {
		cmd.Hold = r.root + "/" + activeFile
	}
	return r.conn.Run(ctx, cmd)
}

// hostGit is how a host reaches the repository, with git.sh: the URL to
// give git, and git.sh's input: the password of an http(s) URL, on a line
// of its own (the URL keeps the user; the password reaches git through a
// credential helper, and never a command line or a file), then the git
// server's known_hosts lines.
func hostGit(rel Release) (url string, stdin io.Reader) {
	url, password, keys := hostGitInput(rel)
	in := password + "\n"
	if len(keys) > 0 {
		in += strings.Join(keys, "\n") + "\n"
	}
	return url, strings.NewReader(in)
}

// hostGitInput is what hostGit gives, in parts: the URL, the password of
// an http(s) URL ("" for none), the git server's known_hosts lines.
func hostGitInput(rel Release) (url, password string, keys []string) {
	// A URL ParseRepoURL refuses never gets this far (configuration
	// checks it); should one, it goes without what looks like a password.
	url = RedactPassword(rel.RepoURL, rel.RepoURL)
	if u, err := ParseRepoURL(rel.RepoURL); err == nil {
		url, password = u.WithoutPassword(), u.Password
	}
	return url, password, rel.GitHostKeys
}

// lsRemote asks, from a host, for the branch's tip (check, and the dry
// run): the host's own access to the repository, with the lent deploy key
// when lend is set.
func lsRemote(rel Release, lend bool) Command {
	url, stdin := hostGit(rel)
	return Command{
		Args:         script(gitScript, "git", "ls-remote", "--", url, "refs/heads/"+rel.Branch),
		Stdin:        stdin,
		ForwardAgent: lend,
	}
}

// lockThen is lock waiting at most wait (whole seconds; 0: not at all) for
// a lock another deployment holds. then, when set, is a constant script
// the lock command runs once it holds the lock (lock.sh's $5); its output
// goes to stdout, and has all arrived when lockThen returns.
func (r *hostRun) lockThen(ctx context.Context, wait time.Duration, then string, stdout io.Writer) (func(), error) {
	var unlock func()
	err := r.step(ctx, StepLock, func(sctx context.Context, out io.Writer) error {
		host, _ := os.Hostname()
		// The script adds "since <the host's UTC time>" once it holds the
		// lock: the next deployer's message then says since when it is held.
		holder, who := "deployment "+r.dep.ID, fmt.Sprintf(" (pushdeploy on %s, pid %d)", host, os.Getpid())
		var stderr bytes.Buffer // read only once the command has ended
		stdin, hold := io.Pipe()
		locked := newSignalWriter("locked\n")
		args := []string{r.d.Root, strconv.Itoa(int(wait.Seconds())), holder, who}
		var lockOut io.Writer = locked
		if then != "" {
			args = append(args, then)
			lockOut = io.MultiWriter(stdout, locked)
		}
		// The lock lives as long as the host's deployment (ctx), not the
		// lock step (sctx).
		lctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			errc <- r.conn.Run(lctx, Command{
				Args:   script(lockScript, args...),
				Stdin:  stdin,
				Stdout: lockOut,
				Stderr: io.MultiWriter(out, &stderr),
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
			if status, ok := exitStatus(err); ok && status == 75 {
				return fmt.Errorf("%w: %s; gave up after %s (DEPLOY_LOCK_TIMEOUT)", ErrBusy, busyReason(stderr.String()), wait)
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

// busyReason is what lock.sh said when it gave up: who holds the lock
// ("locked by deployment X since T (…)"), or that a command of an earlier
// deployment still runs.
func busyReason(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return last
	}
	return "locked by another deployer"
}
