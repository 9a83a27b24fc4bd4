package deploy

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// The steps of shipping a release to one host, grouped by the phases of
// phases.go.

// switchHost points current at the prepared release: the host's
// deployment command (phase.sh, which holds the host lock) switches on
// the deployer's line, so a switch costs one round trip.
func (r *hostRun) switchHost(ctx context.Context) error {
	err := r.phase.send("switch")
	var ev markEvent
	if err == nil {
		ev, err = r.phase.follow(ctx, nil, "switched")
	} else {
		err = r.phase.failed(StepSwitch, r.phase.ended())
	}
	if err != nil {
		r.setStatus(StatusFailed)
		return err
	}
	r.prev, r.switched = strings.TrimSpace(ev.text), true
	return nil
}

// activate restarts the app, checks its health and runs the release's
// after-switch hook, on the deployer's line to the host's deployment
// command (phase.sh), each part its own step; the command waits for the
// deployer's health check between the restart and the hook. Then the
// command goes on to retention, which the deployer follows on the side
// (followRetention) while it activates the next host: removing old
// releases is nothing the next host's restart need wait for.
func (r *hostRun) activate(ctx context.Context) error {
	r.restarted = r.d.RestartCmd != ""
	m := r.phase
	err := m.send("activate")
	var ev markEvent
	if err == nil {
		ev, err = m.follow(ctx, nil, "wait", "activated")
	} else {
		err = m.failed(StepRestart, m.ended())
	}
	if err == nil && ev.kind == "wait" {
		if err = r.checkHealth(ctx); err == nil {
			if err = m.send("go"); err != nil {
				err = m.failed(StepAfterSwitch, m.ended())
			}
		}
		if err == nil {
			_, err = m.follow(ctx, nil, "activated")
		}
	}
	if err != nil {
		r.setStatus(StatusFailed)
		return err
	}
	r.followRetention(ctx)
	return nil
}

// followRetention records the host's retention step, which its command
// runs after the "activated" mark, up to its "retained" mark, on a
// goroutine of its own; awaitRetention waits for it. Retention failing is
// logged, not fatal: the new release is live and healthy. Retention keeps
// the release before, so that a revert (a later host failing, with
// RollbackAll) still has it; the revert waits for it all the same.
func (r *hostRun) followRetention(ctx context.Context) {
	done := make(chan struct{})
	r.retained = done
	m := r.phase
	go func() {
		defer close(done)
		if _, err := m.follow(ctx, nil, "retained"); err != nil {
			r.log.Warn("old releases were not removed; the deploy itself succeeded", "error", err)
		}
	}()
}

// awaitRetention waits for the retention followRetention follows, if any.
func (r *hostRun) awaitRetention() {
	if r.retained != nil {
		<-r.retained
		r.retained = nil
	}
}

// release gives the host lock back.
func (r *hostRun) release() {
	if r.phase != nil {
		r.phase.close()
		r.phase = nil
	}
	if r.unlock != nil {
		r.unlock()
		r.unlock = nil
	}
}

// fetchCommand updates the host's mirror in root (mirror.sh, inside git.sh)
// so that it has the release's commit.
func fetchCommand(root string, rel Release, lend bool) Command {
	url, stdin := hostGit(rel)
	return Command{
		Args:         script(gitScript, "sh", "-c", mirrorScript, "sh", root, url, rel.Branch, rel.Commit),
		Stdin:        stdin,
		ForwardAgent: lend,
	}
}

// upload streams the commit's files to the host (push mode): the
// Archiver's tar stream, sealed with uploadMarker, into unpack.sh. The
// Archiver's own error, when it failed, is the step's: it says why the
// stream stopped (the host's side only knows that it did).
func (r *hostRun) upload(ctx context.Context, out io.Writer) error {
	pr, pw := io.Pipe()
	sent := make(chan error, 1)
	go func() {
		err := sealedArchive(ctx, r.d.Archiver, r.dep.Release.Commit, pw)
		pw.CloseWithError(err)
		sent <- err
	}()
	err := r.run(ctx, out, Command{Args: script(unpackScript, r.root, r.dep.ReleaseName, ""), Stdin: pr})
	pr.CloseWithError(errUploadStopped) // ends the Archiver if the host stopped reading early
	serr := <-sent
	switch {
	case ctx.Err() != nil:
		return err // the step's timeout or a cancellation: the step says which
	case serr != nil && !errors.Is(serr, errUploadStopped):
		return serr
	case err != nil:
		return err
	case serr != nil:
		return errors.New("unpack.sh ended before reading the whole upload")
	}
	return nil
}

// switchArgs runs switch.sh, which moves current for every action: to
// release (a name; "" for none, when reverting), logged with commit ("":
// the release's REVISION); a revert then deletes the release remove.
func (r *hostRun) switchArgs(action, release, commit, remove string) []string {
	return script(switchScript, r.root, action, release, commit, r.dep.ID, remove)
}

func (r *hostRun) restartEnv(relDir, commit string) []string {
	return append([]string{
		"RELEASE_DIR=" + relDir,
		"CURRENT_DIR=" + r.root + "/current",
		"COMMIT=" + commit,
	}, r.deploymentEnv()...)
}

// deploymentEnv is the part of restartEnv that is the same for every
// release (rollback.sh, which learns its release later, sets the rest the
// same way).
func (r *hostRun) deploymentEnv() []string {
	return []string{
		"BRANCH=" + r.dep.Release.Branch,
		"DEPLOYMENT_ID=" + r.dep.ID,
		"APP_PROCESSES=" + strconv.Itoa(r.d.AppProcesses),
		"APP_THREADS=" + strconv.Itoa(r.d.AppThreads),
	}
}

// restartIn runs the restart command as step, in the release folder dir
// with that release's environment (RELEASE_DIR=dir, COMMIT=commit); it
// does nothing when no restart command is set. A deploy, a revert and a
// rollback all restart through it.
func (r *hostRun) restartIn(ctx context.Context, step Step, dir, commit string) error {
	if r.d.RestartCmd == "" {
		return nil
	}
	return r.step(ctx, step, func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{Dir: dir, Env: r.restartEnv(dir, commit), Args: []string{"sh", "-c", r.d.RestartCmd}})
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
	_ = r.step(ctx, StepCleanup, func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{Args: script(removeScript, r.root, r.dep.ReleaseName)})
	})
}

// revert puts current back on prev, restarts the previous release when
// the new one was restarted, and deletes the new one.
func (r *hostRun) revert(ctx context.Context, prev string, restart bool) bool {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if prev != "" {
		name := strings.TrimPrefix(prev, "releases/")
		if !strings.HasPrefix(prev, "releases/") || ValidReleaseName(name) != nil {
			r.log.Error("not reverting: current pointed at an unexpected target", "target", prev)
			return false
		}
	}
	var prevCommit strings.Builder
	if err := r.step(ctx, StepRevert, func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Args:   r.switchArgs(switchRevert, strings.TrimPrefix(prev, "releases/"), "", r.dep.ReleaseName),
			Stdout: io.MultiWriter(&prevCommit, out),
		})
	}); err != nil {
		return false
	}
	if prev == "" || r.d.RestartCmd == "" || !restart {
		return true
	}
	_ = r.restartIn(ctx, StepRestartPrevious, r.root+"/"+prev, strings.TrimSpace(prevCommit.String()))
	return true
}
