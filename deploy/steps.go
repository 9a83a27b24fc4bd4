package deploy

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The steps of shipping a release to one host.

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
	r.prev, err = r.switchCurrent(ctx)
	if err != nil {
		r.remove(ctx)
		return err
	}
	r.switched = true
	if err := r.afterSwitch(ctx); err != nil {
		if r.revert(ctx, r.prev) {
			r.switched = false
		}
		return err
	}
	r.retain(ctx)
	return nil
}

// afterSwitch restarts the app, checks its health and runs the release's
// after-switch hook: any failure sends the host back.
func (r *hostRun) afterSwitch(ctx context.Context) error {
	if err := r.restart(ctx); err != nil {
		return err
	}
	if err := r.checkHealth(ctx); err != nil {
		return err
	}
	return r.hook(ctx, "after-switch")
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
	if len(r.d.SharedPaths) > 0 {
		steps = append(steps, struct {
			name string
			cmd  Command
		}{"shared", Command{Args: script(sharedScript, append([]string{r.root, r.dep.ReleaseName}, r.d.SharedPaths...)...)}})
	}
	for _, s := range steps {
		if err := r.step(ctx, s.name, func(ctx context.Context, out io.Writer) error {
			return r.run(ctx, out, s.cmd)
		}); err != nil {
			return err
		}
	}
	return r.hook(ctx, "before-switch")
}

// hook runs the release's .pushdeploy/<name> hook, if it has one, in the
// release folder with the restart command's environment.
func (r *hostRun) hook(ctx context.Context, name string) error {
	return r.step(ctx, name, func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Dir:  r.relDir(),
			Env:  r.restartEnv(r.relDir(), r.dep.Release.Commit),
			Args: script(hookScript, name),
		})
	})
}

// retain removes releases beyond KeepReleases after a successful deploy.
// A failure here is logged, not fatal: the new release is live and healthy.
func (r *hostRun) retain(ctx context.Context) {
	if r.d.KeepReleases <= 0 {
		return
	}
	prev := strings.TrimPrefix(r.prev, "releases/")
	err := r.step(ctx, "retention", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{Args: script(retentionScript, r.root, strconv.Itoa(r.d.KeepReleases), r.dep.ReleaseName, prev)})
	})
	if err != nil {
		r.log.Warn("old releases were not removed; the deploy itself succeeded", "error", err)
	}
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
func (r *hostRun) revert(ctx context.Context, prev string) bool {
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
	if err := r.step(ctx, "revert", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Args:   script(revertScript, r.root, prev, r.dep.ReleaseName, r.dep.ID),
			Stdout: io.MultiWriter(&prevCommit, out),
		})
	}); err != nil {
		return false
	}
	if prev == "" || r.d.RestartCmd == "" {
		return true
	}
	prevDir := r.root + "/" + prev
	_ = r.step(ctx, "restart-previous", func(ctx context.Context, out io.Writer) error {
		return r.run(ctx, out, Command{
			Dir:  prevDir,
			Env:  r.restartEnv(prevDir, strings.TrimSpace(prevCommit.String())),
			Args: []string{"sh", "-c", r.d.RestartCmd},
		})
	})
	return true
}
