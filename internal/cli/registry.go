package cli

// registry.go is serve's set of apps: one deploy.Worker per app, each with
// its own Deployer, and what changes them while serve runs (SIGHUP). The
// web server reads the set through webhook.Apps, the workers ask it about
// each other through deploy.Peers.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/webhook"
)

// hostsDeployed is what promotion reads from the history
// (history.Store).
type hostsDeployed interface {
	// HostsDeployed names the hosts on which a deploy of commit (a full
	// hash) in app succeeded.
	HostsDeployed(ctx context.Context, app, commit string) ([]string, error)
}

// appParts is what one configuration of an app needs besides its worker:
// its Deployer (observed by serve's history, live view and metrics, and by
// the app's own notifier) and the function that releases its keys and
// delivers its last notifications.
type appParts struct {
	deployer *deploy.Deployer
	close    func()
}

// appRun is one app as serve runs it.
type appRun struct {
	cfg     *config.App // the configuration in effect (the last one that validated)
	worker  *deploy.Worker
	closers []func() // every Deployer this app has had: run once its worker has stopped
	unwatch func()   // stops the metrics' watch of its queue
	cancel  context.CancelFunc
	done    chan struct{} // closed when the worker's Run has returned
	stopped sync.Once
	// removing: the app's file is gone; its worker takes no request and
	// the app goes once what it accepted has run.
	removing bool
}

// registry is the apps serve deploys. It is safe for concurrent use: the
// web server reads it on every request while a reload changes it.
type registry struct {
	log     *slog.Logger
	history hostsDeployed
	// build makes an app's Deployer (serve: serveParts); tests give fakes.
	build func(app *config.App, log *slog.Logger) (appParts, error)
	// watch starts watching a worker's queue for the metrics and returns
	// the function that stops it; nil: not watched.
	watch func(w *deploy.Worker) (unwatch func())
	// seed reads the hosts' current releases for the metrics, in the
	// background, when a worker starts; the returned func waits for it
	// (it ends with ctx). nil: not read.
	seed func(ctx context.Context, w *deploy.Worker, log *slog.Logger) (wait func())
	// polls runs each app's poller beside its worker (poll.go); nil:
	// none.
	polls *polling
	// backlog, when set, is the deployment queue every worker keeps its
	// deployments in (serve: SQLite, or PostgreSQL shared with other
	// deployers); record marks interrupted the deployments of deployers
	// that died. nil: each worker's queue is in memory (tests).
	backlog deploy.Backlog
	record  deploy.Interrupter
	// insecure is DEPLOY_WEBHOOK_INSECURE: then an app needs no secret.
	insecure bool
	grace    time.Duration
	// idleEvery is how often a removed app's worker is looked at until
	// it is idle (default 200ms).
	idleEvery time.Duration

	// ctx is the workers' parent context: serve's without its cancel
	// (serve stops the workers itself, after the web server), ended by
	// stop.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers' goroutines and the removals waiting for them

	mu       sync.Mutex
	setup    *config.Setup
	apps     map[string]*appRun
	problems []string
	started  bool
}

var (
	_ webhook.Apps = (*registry)(nil)
	_ deploy.Peers = (*registry)(nil)
)

// appLogger is the logger of app's worker and deployments: serve's, with
// the app's name when it comes from DEPLOY_APPS_DIR (the one app without
// it logs exactly as before there were apps).
func appLogger(log *slog.Logger, app *config.App) *slog.Logger {
	if app.File == "" {
		return log
	}
	return log.With("app", app.Name)
}

// open makes the workers of every app of s; start runs them. An app that
// cannot be set up is an error: serve does not start with it.
func (r *registry) open(ctx context.Context, s *config.Setup) error {
	var probs []string
	for _, app := range s.Apps {
		probs = append(probs, appProblems(app, r.insecure)...)
	}
	if len(probs) > 0 {
		return &config.Error{Problems: probs}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.setup, r.apps = s, map[string]*appRun{}
	for _, app := range s.Apps {
		run, err := r.newRun(app)
		if err != nil {
			r.closeAllLocked()
			return err
		}
		r.apps[app.Name] = run
	}
	return nil
}

// newRun builds app's worker (not yet running).
func (r *registry) newRun(app *config.App) (*appRun, error) {
	log := appLogger(r.log, app)
	parts, err := r.build(app, log)
	if err != nil {
		if app.File != "" {
			return nil, fmt.Errorf("app %s (%s): %w", app.Name, app.File, err)
		}
		return nil, err
	}
	w := &deploy.Worker{
		Deployer:    parts.deployer,
		App:         app.Name,
		PromoteFrom: app.PromoteFrom,
		Peers:       r,
		Hosts:       app.Hosts,
		Logger:      log,
		Grace:       r.grace,
		Backlog:     r.backlog,
		Record:      r.record,
	}
	run := &appRun{cfg: app, worker: w, closers: []func(){parts.close}, unwatch: func() {}, done: make(chan struct{})}
	if r.watch != nil {
		run.unwatch = r.watch(w)
	}
	return run, nil
}

// start runs every app's worker. Requests that came before wait in the
// workers' queues.
func (r *registry) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = true
	for _, run := range r.apps {
		r.runLocked(run, nil)
	}
}

// runLocked starts run's worker, after the worker of the app's previous
// run (after, when not nil) has stopped: one app never runs two
// deployments at once, even while it is removed and added again.
func (r *registry) runLocked(run *appRun, after chan struct{}) {
	ctx, cancel := context.WithCancel(r.ctx)
	run.cancel = cancel
	stopPolling := r.polls.start(ctx, run.worker, run.cfg)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(run.done)
		defer stopPolling()
		if after != nil {
			select {
			case <-after:
			case <-ctx.Done():
				return
			}
		}
		if r.seed != nil {
			defer r.seed(ctx, run.worker, run.worker.Logger)()
		}
		if err := run.worker.Run(ctx); err != nil {
			r.log.Error("worker stopped", "app", run.cfg.Name, "error", err)
		}
	}()
}

// List returns the apps, sorted by name (webhook.Apps).
func (r *registry) List() []webhook.App {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]webhook.App, 0, len(r.apps))
	for _, run := range r.apps {
		out = append(out, webApp(run))
	}
	slices.SortFunc(out, func(a, b webhook.App) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get returns the app called name (webhook.Apps). A removed app is
// there, refusing requests, until what it accepted has run.
func (r *registry) Get(name string) (webhook.App, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run, ok := r.apps[name]
	if !ok {
		return webhook.App{}, false
	}
	return webApp(run), true
}

// Problems are the app files the last reload could not use (webhook.Apps).
func (r *registry) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.problems)
}

func webApp(run *appRun) webhook.App {
	c := run.cfg
	return webhook.App{Name: c.Name, Secret: c.WebhookSecret, Branch: c.Branch, Repo: c.WebhookRepo, Hosts: hostNames(c.Hosts), Deployments: run.worker}
}

// run returns app's run, nil when there is none.
func (r *registry) run(app string) *appRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apps[app]
}

// DeployedEverywhere reports whether app deployed commit successfully to
// every host it has now (deploy.Peers), by its history.
func (r *registry) DeployedEverywhere(ctx context.Context, app, commit string) (bool, string, error) {
	run := r.run(app)
	if run == nil {
		return false, fmt.Sprintf("app %s is not served here", app), nil
	}
	return deployedEverywhere(ctx, r.history, app, run.cfg.Hosts, commit)
}

// Running returns the commit every host of app runs now (deploy.Peers).
func (r *registry) Running(ctx context.Context, app string) (string, error) {
	run := r.run(app)
	if run == nil {
		return "", fmt.Errorf("app %s is not served here", app)
	}
	hosts, err := run.worker.Releases(ctx)
	return runningCommit(hosts, err)
}

// deployedEverywhere reports whether the history has a successful deploy
// of commit in app on each of hosts; when not, reason names the hosts
// without one.
func deployedEverywhere(ctx context.Context, h hostsDeployed, app string, hosts []deploy.Host, commit string) (bool, string, error) {
	if h == nil {
		return false, fmt.Sprintf("%s has no deployment history here", app), nil
	}
	done, err := h.HostsDeployed(ctx, app, commit)
	if err != nil {
		return false, "", fmt.Errorf("history of %s: %w", app, err)
	}
	var missing []string
	for _, name := range hostNames(hosts) {
		if !slices.Contains(done, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("%s has not deployed %s to %s", app, short(commit), strings.Join(missing, ", ")), nil
	}
	return true, "", nil
}

// runningCommit is the one commit hosts (an app's, as Releases read them)
// run: an error when a host cannot be read, runs no release, or hosts
// disagree. (deploy.Gate names the app.)
func runningCommit(hosts []deploy.HostReleases, err error) (string, error) {
	if err != nil {
		return "", err
	}
	commit := ""
	for _, h := range hosts {
		cur, ok := currentRelease(h)
		switch {
		case h.Err != nil:
			return "", h.Err
		case !ok:
			return "", fmt.Errorf("host %s runs no release", h.Host)
		case commit == "":
			commit = cur.Commit
		case cur.Commit != commit:
			return "", fmt.Errorf("its hosts run different commits (%s): deploy one commit to all of them first", currentByHost(hosts))
		}
	}
	if commit == "" {
		return "", errors.New("it has no hosts")
	}
	return commit, nil
}

// currentRelease is the release h's current points at.
func currentRelease(h deploy.HostReleases) (deploy.ReleaseInfo, bool) {
	for _, rel := range h.Releases {
		if rel.Current && rel.Commit != "" {
			return rel, true
		}
	}
	return deploy.ReleaseInfo{}, false
}

// reload makes the apps those of next (Setup.ReloadApps), problems being
// the files that did not validate (their apps keep their configuration):
// a new app starts; a changed one takes its new configuration at its next
// deployment; a removed one takes no request from now on and goes when
// what it accepted has run. It returns the setup to reload from next time.
func (r *registry) reload(next *config.Setup, problems []string) *config.Setup {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(next.Apps) == 0 {
		// The web server needs an app; keep serving the ones there are.
		problems = append(problems, fmt.Sprintf("%s: no app file (NAME.env) left: the apps stay as they were", next.Dir))
		next = r.setup
	}
	for _, app := range next.Apps {
		problems = append(problems, r.applyLocked(app)...)
	}
	for name, run := range r.apps {
		if _, ok := next.App(name); !ok && !run.removing {
			r.removeLocked(run)
		}
	}
	r.setup, r.problems = next, problems
	for _, p := range problems {
		r.log.Error("apps: reload: "+p, "dir", next.Dir)
	}
	r.log.Info("apps reloaded", "dir", next.Dir, "apps", len(next.Apps), "problems", len(problems))
	return next
}

// applyLocked starts app when it is new, and hands its new configuration
// to its worker when it changed. The problems returned keep the app as it
// was.
func (r *registry) applyLocked(app *config.App) []string {
	if probs := appProblems(app, r.insecure); len(probs) > 0 {
		return probs
	}
	old := r.apps[app.Name]
	if old != nil && !old.removing && sameApp(old.cfg, app) {
		return nil
	}
	if old != nil && !old.removing {
		parts, err := r.build(app, appLogger(r.log, app))
		if err != nil {
			return []string{fmt.Sprintf("%s: %v", app.File, err)}
		}
		old.worker.Reconfigure(parts.deployer, app.Hosts, app.PromoteFrom)
		r.polls.update(old.worker, app)
		old.cfg = app
		old.closers = append(old.closers, parts.close)
		r.log.Info("app changed: its next deployment uses the new configuration", "app", app.Name, "file", app.File)
		return nil
	}
	run, err := r.newRun(app)
	if err != nil {
		return []string{err.Error()}
	}
	var after chan struct{}
	if old != nil {
		after = old.done // removed, and back before it was gone
	}
	r.apps[app.Name] = run
	if r.started {
		r.runLocked(run, after)
	}
	r.log.Info("app added", "app", app.Name, "file", app.File, "branch", app.Branch, "hosts", len(app.Hosts))
	return nil
}

// sameApp tells whether a and b configure an app alike.
func sameApp(a, b *config.App) bool {
	return a == b || (a.Name == b.Name && a.File == b.File && reflect.DeepEqual(a.Config, b.Config))
}

// removeLocked closes run's worker to new requests and, in the background,
// waits until what it accepted has run; then the app is gone (webhooks
// for it are answered 404) and its worker stops.
func (r *registry) removeLocked(run *appRun) {
	run.removing = true
	run.worker.Close()
	r.log.Info("app removed: it takes no more requests, and goes when its running deployment has ended", "app", run.cfg.Name, "file", run.cfg.File)
	every := r.idleEvery
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for !idle(run.worker) {
			select {
			case <-t.C:
			case <-r.ctx.Done():
				r.stopRun(run) // serve stops: this app goes with the others
				return
			}
		}
		r.mu.Lock()
		if r.apps[run.cfg.Name] == run {
			delete(r.apps, run.cfg.Name)
		} else {
			run.unwatch = func() {} // added again: the metrics are the new run's
		}
		r.mu.Unlock()
		r.stopRun(run)
		r.log.Info("app gone", "app", run.cfg.Name)
	}()
}

// idle tells whether w has nothing running and nothing queued.
func idle(w *deploy.Worker) bool {
	h := w.Health()
	return h.Running == nil && h.QueueLength == 0
}

// stopRun stops run's worker (the running deployment stops at its next
// safe point, bounded by Grace), waits for it, and releases its keys.
func (r *registry) stopRun(run *appRun) {
	run.stopped.Do(func() {
		run.worker.Close()
		if run.cancel != nil {
			run.cancel()
			<-run.done
		}
		run.unwatch()
		for _, c := range run.closers {
			c()
		}
	})
}

// closeRequests makes every worker refuse new requests: the first step of
// serve's shutdown.
func (r *registry) closeRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, run := range r.apps {
		run.worker.Close()
	}
}

// stop stops every worker and waits for them (and for the removals under
// way), then releases their keys and delivers their last notifications.
func (r *registry) stop() {
	r.mu.Lock()
	runs := make([]*appRun, 0, len(r.apps))
	for _, run := range r.apps {
		runs = append(runs, run)
	}
	r.apps = map[string]*appRun{}
	r.mu.Unlock()
	r.cancel() // every worker stops at its next safe point; removals stop waiting
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stopRun(run)
		}()
	}
	wg.Wait()
	r.wg.Wait()
}

// closeAllLocked releases what open built before it failed.
func (r *registry) closeAllLocked() {
	for _, run := range r.apps {
		run.unwatch()
		for _, c := range run.closers {
			c()
		}
	}
	r.apps = nil
	r.cancel()
}
