package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/live"
	"github.com/pushdeploy/pushdeploy/metrics"
	"github.com/pushdeploy/pushdeploy/webhook"
	"github.com/spf13/cobra"
)

// runServe receives webhooks and API calls and deploys from one queue until
// SIGTERM or SIGINT: then it stops accepting, lets the running step finish
// (bounded by --grace), and exits 0.
func newServeCommand(c *common) *cobra.Command {
	grace := 2 * time.Minute
	cmd := &cobra.Command{
		Use:   "serve [--grace 2m]",
		Short: "webhook receiver, API, health endpoint, metrics, status page; deploys from one queue",
		Long: `Receive the forge's push webhooks (POST /webhook) and API calls, and deploy
from one queue; serve /healthz, /metrics and the status page on
DEPLOY_LISTEN. On SIGTERM or SIGINT, stop accepting, let the running step
finish (at most --grace), and exit 0.

With DEPLOY_APPS_DIR, each app has its own queue (POST /webhook/APP): apps
deploy at the same time, each app one deployment at a time. On SIGHUP
(systemctl reload), re-read the apps folder: new apps start, changed ones
take effect at their next deployment, removed ones go once their running
deployment has ended; a file that does not validate keeps its app as it
was, and is reported in the log and on /healthz.`,
		Example: `  pushdeploy serve
  pushdeploy serve --env-file /etc/pushdeploy/deploy.env --grace 5m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), c, &grace, cmd.OutOrStdout(), c.stderr)
		},
	}
	cmd.Flags().Var(durationFlag{&grace}, "grace", "on SIGTERM, how long the running step may take to finish before it is stopped")
	return cmd
}

func runServe(ctx context.Context, c *common, grace *time.Duration, stdout, stderr io.Writer) error {
	log, setup, err := c.setupAll()
	if err != nil {
		return err
	}
	cfg := setup.Server
	var probs []string
	for _, app := range setup.Apps {
		probs = append(probs, appProblems(app, cfg.WebhookInsecure)...)
	}
	if len(probs) > 0 {
		return &config.Error{Problems: probs}
	}
	for _, w := range setupWarnings(setup) {
		log.Warn(w)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}

	// The history is opened before the workers start and closed after they
	// have stopped (deferred: runServe waits for them before it returns),
	// so that the last deployments' ends are written.
	// A database that cannot be reached is waited for.
	hist, err := openServeHistory(ctx, cfg, log)
	if errors.Is(err, errStoppedWaiting) {
		log.Info("stopped before the database could be reached")
		return nil
	}
	if err != nil {
		return err
	}
	defer hist.Close(log)
	turns, closeTurns, err := openTurns(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeTurns()
	// The queue, like the history, outlives the workers: what they
	// accepted and did not run waits there for the next start.
	backlog, err := openQueue(ctx, cfg, nodeName(cfg))
	if err != nil {
		return err
	}
	defer backlog.Q.Close()
	if err := recoverQueue(ctx, cfg, backlog, hist.store, log); err != nil {
		return err
	}
	pruneCtx, stopPruning := context.WithCancel(ctx)
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		pruneQueue(pruneCtx, backlog.Q, log)
	}()
	defer func() { stopPruning(); <-pruned }()

	// Everything that follows deployments as they happen hears their
	// events through one list: the history, the live status page, the
	// metrics, and each app's own notifications.
	hub := &live.Hub{} // the status page's live view and event streams
	metered := metrics.New()
	bi, _ := debug.ReadBuildInfo()
	v, rev := buildVersion(version, bi)
	metered.BuildInfo(v, rev, runtime.Version())
	metered.NodeInfo(nodeName(cfg))
	elog, err := openEventLog(ctx, cfg, log, hist.store) // the other deployers' live views
	if err != nil {
		return err
	}
	defer closeEventLog(elog, log) // after the workers (deferred below) have stopped
	shared := deploy.Observers{hub, hist.rec, metered, elog}
	reg := &registry{
		log:     log,
		history: hist.store,
		build: func(app *config.App, log *slog.Logger) (appParts, error) {
			return serveParts(app, log, shared)
		},
		watch: func(w *deploy.Worker) func() {
			metered.WatchQueue(w.App, w)
			return func() { metered.ForgetApp(w.App) }
		},
		seed: func(ctx context.Context, w *deploy.Worker, log *slog.Logger) func() {
			return seedHostMetrics(ctx, metered, w, log)
		},
		polls:    newPolling(hist.store, turns),
		backlog:  backlog,
		record:   hist.store,
		insecure: cfg.WebhookInsecure,
		grace:    *grace,
	}
	if err := reg.open(ctx, setup); err != nil {
		return err
	}
	// Stops every worker (the running deployments stop at their next safe
	// point), then releases the keys and delivers the last notifications.
	defer reg.stop()
	srv, err := webhook.New(webhook.Config{
		Insecure: cfg.WebhookInsecure,
		APIToken: cfg.APIToken, BodyLimit: int64(cfg.WebhookMaxBody), Version: versionString(), StateDir: cfg.DataDir, Logger: log, Guard: serveGuard(cfg),
		Live: hub, EventLog: elog, StatusPublic: cfg.StatusPublic,
		History: hist.store, Checks: healthChecks(cfg, hist.store),
		Metrics: metered,
	}, reg)
	if err != nil {
		return err
	}

	// Listen first: a port that is taken is the one error to report, before
	// anything logs into the hosts. Requests that come in before the
	// workers run wait in their queues.
	if err := srv.Open(cfg.Listen); err != nil {
		return fmt.Errorf("DEPLOY_LISTEN: %w", err)
	}
	reg.start()
	logServing(log, setup, srv.Addr().String())

	// SIGHUP (systemctl reload) re-reads DEPLOY_APPS_DIR.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			setup = reloadSetup(log, reg, setup)
		}
	}
	log.Info("shutting down: no new requests; the running deployment stops at its next safe point", "grace", grace.String())
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	reg.closeRequests() // requests still in flight are answered 503, not queued
	err = srv.Close(closeCtx)
	reg.stop()
	log.Info("stopped")
	return err
}

// reloadSetup re-reads the apps folder of setup into reg (SIGHUP) and
// returns the setup now in effect.
func reloadSetup(log *slog.Logger, reg *registry, setup *config.Setup) *config.Setup {
	if setup.Dir == "" {
		log.Info("SIGHUP: nothing to reload: DEPLOY_APPS_DIR is not set (a change to the environment or the env file needs a restart)")
		return setup
	}
	log.Info("SIGHUP: reloading the apps", "dir", setup.Dir)
	next, problems := setup.ReloadApps()
	for _, w := range next.Warnings {
		log.Warn("apps: reload: " + w)
	}
	return reg.reload(next, problems)
}

// logServing says serve is up: where, and what it deploys.
func logServing(log *slog.Logger, setup *config.Setup, addr string) {
	cfg := setup.Server
	if setup.Dir == "" {
		app := setup.Apps[0]
		log.Info("serving", "listen", addr, "branch", app.Branch, "hosts", len(app.Hosts), "api", cfg.APIToken != "", "node", nodeName(cfg))
		return
	}
	log.Info("serving", "listen", addr, "apps", strings.Join(setup.Names(), ", "), "dir", setup.Dir, "api", cfg.APIToken != "", "node", nodeName(cfg))
	for _, app := range setup.Apps {
		log.Info("app", "app", app.Name, "file", app.File, "branch", app.Branch, "hosts", len(app.Hosts), "promote_from", app.PromoteFrom)
	}
}

// serveParts builds app's Deployer for serve, observed by shared (the
// history, the live view, the metrics) and by the app's own notifier
// (DEPLOY_NOTIFY_URL and DEPLOY_BITBUCKET_TOKEN may differ per app).
func serveParts(app *config.App, log *slog.Logger, shared deploy.Observers) (appParts, error) {
	d, closeKeys, err := newDeployer(app, log)
	if err != nil {
		return appParts{}, err
	}
	observers := slices.Clone(shared)
	notifier, err := newNotifier(app.Config, log)
	if err != nil {
		closeKeys()
		return appParts{}, err
	}
	if notifier != nil {
		observers = append(observers, notifier)
	}
	d.Observer = observers
	return appParts{deployer: d, close: func() {
		// After the worker has stopped: the last deployment's end is told.
		if notifier != nil {
			closeNotifier(notifier, log, 10*time.Second)
		}
		closeKeys()
	}}, nil
}

// appProblems are the reasons serve cannot run app as configured: a
// missing webhook secret, unless webhooks are accepted unsigned.
func appProblems(app *config.App, insecure bool) []string {
	if app.WebhookSecret != "" || insecure {
		return nil
	}
	const fix = "DEPLOY_WEBHOOK_SECRET is required by serve: set it to a long random string and give the same secret to the forge's webhook " +
		"(or set DEPLOY_WEBHOOK_INSECURE=true to accept unsigned webhooks, for local experiments only)"
	if app.File == "" {
		return []string{fix}
	}
	return []string{app.File + ": " + fix}
}

// setupWarnings are serveWarnings for every app: the server's once, and
// each app's named.
func setupWarnings(s *config.Setup) []string {
	if s.Dir == "" {
		return serveWarnings(s.Apps[0].Config)
	}
	w := insecureWarnings(s.Server)
	for _, app := range s.Apps {
		for _, aw := range repoWarnings(app.Config) {
			w = append(w, "app "+app.Name+": "+aw)
		}
	}
	return w
}

// serveWarnings are what serve's configuration lets through that an
// operator may not mean: logged at start-up.
func serveWarnings(cfg *config.Config) []string {
	return append(insecureWarnings(cfg), repoWarnings(cfg)...)
}

// insecureWarnings are serveWarnings of the server.
func insecureWarnings(cfg *config.Config) []string {
	if cfg.WebhookInsecure {
		return []string{"DEPLOY_WEBHOOK_INSECURE=true: webhooks are accepted without a valid signature; anyone who can reach /webhook can start a deploy"}
	}
	return nil
}

// repoWarnings are serveWarnings of an app.
func repoWarnings(cfg *config.Config) []string {
	var w []string
	if cfg.WebhookRepo == "" {
		// The signature proves only that the sender knows the secret: a
		// secret shared by several repositories' webhooks (a workspace-
		// or organisation-wide one) lets each of them deploy this app.
		w = append(w, "DEPLOY_WEBHOOK_REPO is empty: a push to "+cfg.Branch+" from any repository whose webhook has the secret is deployed; "+
			"set it to this app's repository (e.g. team/app)")
	}
	return w
}
