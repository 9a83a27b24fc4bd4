package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// A host's deployment is one remote command, phase.sh, marked as in
// marked.go: the prepare phase, then the switch and the activation, each
// moved on by a line from the deployer (steps.go). It starts on every host at once, right after the logins, and
// runs the steps that change no release folder and no current: prepare
// (the root), the fetch into the host's mirror and pip-copy (the host's
// compiled copy of pip, for the venvs). Then it waits: the
// deployer sends "lock" and "build" in the order DEPLOY_PARALLEL gives,
// so the host lock is taken, and the release built (checkout, venv, pip,
// shared, before-switch), in the same order as when every step was a
// command of its own. The command then holds the host lock until the
// deployment is done (release).

// startPrepare starts the host's prepare command and follows it until it
// waits for the lock: prepare, fetch and pip-copy are done. With a lent
// deploy key the key is lent to the command only until the fetch has
// ended (its mark "fetched"; Command.LendUntil): the
// fetch is the one step that may use it; what runs repository code (pip,
// the hooks) comes later, after the deployer's "build", and finds it
// refused (phase.sh also unsets SSH_AUTH_SOCK after the fetch).
func (r *hostRun) startPrepare(ctx context.Context) error {
	rel := r.dep.Release
	files := "fetch"
	if r.d.Archiver != nil {
		files = "push"
	}
	lent := make(chan struct{})
	url, password, keys := hostGitInput(rel)
	header := password + "\n" + strconv.Itoa(len(keys)) + "\n"
	for _, k := range keys {
		header += k + "\n"
	}
	host, _ := os.Hostname()
	// The script adds "since <the host's UTC time>" once it holds the
	// lock: the next deployer's message then says since when it is held.
	holder, who := "deployment "+r.dep.ID, fmt.Sprintf(" (pushdeploy on %s, pid %d)", host, os.Getpid())
	reuse := "no"
	if r.d.VenvReuse {
		reuse = "yes"
	}
	health := "no"
	if r.d.HealthURL != "" {
		health = "yes"
	}
	args := []string{
		r.d.Root, r.dep.ReleaseName, r.d.Python, r.d.hostTools(), seconds(r.d.StepTimeout), strconv.Itoa(int(r.d.lockWait().Seconds())),
		holder, who, reuse, rel.Commit, files, url, rel.Branch, r.dep.ID, strconv.Itoa(r.d.AppProcesses), strconv.Itoa(r.d.AppThreads),
		gitScript, mirrorScript, unpackScript, venvScript, unpackPipProgram, pipScript, sharedScript, hookScript, stepsScript,
		switchScript, retentionScript, r.d.RestartCmd, health, strconv.Itoa(max(r.d.KeepReleases, 0)), pipCopyScript,
	}
	cmd := Command{Args: script(phaseScript, append(args, r.d.SharedPaths...)...)}
	if r.d.LendGitKey && files == "fetch" {
		cmd.ForwardAgent, cmd.LendUntil = true, lent
	}
	r.phase = r.startMarked(ctx, cmd, header)
	err := r.phase.step(ctx, StepPrepare, func(ev markEvent) error {
		if ev.kind != "root" {
			return nil
		}
		if !strings.HasPrefix(ev.text, "/") || ValidPath(ev.text) != nil {
			return fmt.Errorf("host reported an unusable root folder %q", ev.text)
		}
		r.root = ev.text
		return nil
	})
	if err == nil {
		_, err = r.phase.follow(ctx, nil, "fetched")
	}
	close(lent) // the key's loan ends with the fetch
	if err == nil {
		_, err = r.phase.follow(ctx, nil, "wait")
	}
	if err == nil && r.root == "" {
		err = r.phase.failed(StepPrepare, fmt.Errorf("host reported no root folder"))
	}
	if err != nil {
		r.setStatus(StatusFailed)
	}
	return err
}

// seconds is d in whole seconds, rounded up, as coreutils timeout takes it.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// takeLock takes the host's lock (the lock step of its prepare command),
// unless this run holds it already.
func (r *hostRun) takeLock(ctx context.Context) error {
	r.setStatus(StatusRunning)
	if r.phase.passed[StepLock] {
		return nil
	}
	err := r.phase.send("lock")
	if err == nil {
		_, err = r.phase.follow(ctx, nil, "wait")
	} else {
		err = r.phase.failed(StepLock, r.phase.ended())
	}
	if err != nil {
		r.setStatus(StatusFailed)
	}
	return err
}

// prepareHost takes the host's lock, unless taken, and builds the release,
// up to and including its before-switch hook. On failure the half-built
// release is removed; the lock stays held until release.
func (r *hostRun) prepareHost(ctx context.Context) error {
	r.setStatus(StatusRunning)
	err := r.build(ctx)
	r.prepared = r.phase.passed[StepLock]
	if err != nil {
		if r.prepared {
			r.remove(ctx)
			r.prepared = false
		}
		r.setStatus(StatusFailed)
	}
	return err
}

func (r *hostRun) build(ctx context.Context) error {
	if r.dep.stopRequested() {
		next := StepCheckout
		if !r.phase.passed[StepLock] {
			next = StepLock
		}
		return r.step(ctx, next, func(context.Context, io.Writer) error { return r.dep.stopError() })
	}
	if err := r.phase.send("build"); err != nil {
		return r.phase.failed(StepLock, r.phase.ended())
	}
	// A stop asked for while the host builds takes effect before its
	// next step: the script looks between steps.
	built := make(chan struct{})
	defer close(built)
	go func() {
		select {
		case <-r.dep.stopC():
			_ = r.phase.send("stop")
		case <-built:
		}
	}()
	ev, err := r.phase.follow(ctx, nil, "built", "upload")
	if err != nil || ev.kind == "built" {
		return err
	}
	// Push mode: the deployer streams the files, with a command of its
	// own (the prepare command's stdin carries its lines).
	if err := r.step(ctx, StepUpload, r.upload); err != nil {
		return err
	}
	if err := r.phase.send("uploaded"); err != nil {
		return r.phase.failed(StepUpload, r.phase.ended())
	}
	_, err = r.phase.follow(ctx, nil, "built")
	return err
}
