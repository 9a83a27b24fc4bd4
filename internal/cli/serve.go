package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
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
finish (at most --grace), and exit 0.`,
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
	log, cfg, err := c.setup()
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" && !cfg.WebhookInsecure {
		return &config.Error{Problems: []string{
			"DEPLOY_WEBHOOK_SECRET is required by serve: set it to a long random string and give the same secret to the forge's webhook " +
				"(or set DEPLOY_WEBHOOK_INSECURE=true to accept unsigned webhooks, for local experiments only)"}}
	}
	for _, w := range serveWarnings(cfg) {
		log.Warn(w)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}

	// The history is opened before the worker starts and closed after it
	// has stopped (deferred: runServe waits for the worker before it
	// returns), so that the last deployment's end is written.
	hist, err := openHistory(ctx, cfg, log, 24*time.Hour)
	if err != nil {
		return err
	}
	defer hist.Close(log)

	d, closeKeys, err := newDeployer(cfg, log)
	if err != nil {
		return err
	}
	defer closeKeys()
	// Everything that follows deployments as they happen hears their
	// events through one list: the history, the live status page, the
	// metrics, the notifications.
	var observers deploy.Observers
	hub := &live.Hub{} // the status page's live view and event streams
	observers = append(observers, hub)
	observers = append(observers, hist.rec) // the history (history.db)
	// The metrics (GET /metrics).
	metered := metrics.New()
	bi, _ := debug.ReadBuildInfo()
	v, rev := buildVersion(version, bi)
	metered.BuildInfo(v, rev, runtime.Version())
	observers = append(observers, metered)
	notifier, err := newNotifier(cfg, log)
	if err != nil {
		return err
	}
	if notifier != nil {
		observers = append(observers, notifier)
		// After the worker has stopped: the last deployment's end is told.
		defer closeNotifier(notifier, log, 10*time.Second)
	}
	if len(observers) > 0 {
		d.Observer = observers
	}
	worker := &deploy.Worker{Deployer: d, Hosts: cfg.Hosts, Logger: log, Grace: *grace}
	metered.WatchQueue(worker.App, worker)
	hostNames := make([]string, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		hostNames[i] = h.String()
	}
	srv, err := webhook.New(webhook.Config{
		Insecure: cfg.WebhookInsecure,
		APIToken: cfg.APIToken, BodyLimit: int64(cfg.WebhookMaxBody), Version: versionString(), StateDir: cfg.DataDir, Logger: log, Guard: serveGuard(cfg),
		Live: hub, StatusPublic: cfg.StatusPublic,
		History: hist.store,
		Metrics: metered,
	}, webhook.OneApp(webhook.App{
		Secret: cfg.WebhookSecret, Branch: cfg.Branch, Repo: cfg.WebhookRepo, Hosts: hostNames, Deployments: worker,
	}))
	if err != nil {
		return err
	}

	// Listen first: a port that is taken is the one error to report, before
	// anything logs into the hosts. Requests that come in before the worker
	// runs wait in its queue.
	if err := srv.Open(cfg.Listen); err != nil {
		return fmt.Errorf("DEPLOY_LISTEN: %w", err)
	}
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() { workerDone <- worker.Run(workerCtx) }()
	defer seedHostMetrics(workerCtx, metered, worker, log)()

	log.Info("serving", "listen", srv.Addr().String(), "branch", cfg.Branch, "hosts", len(cfg.Hosts), "api", cfg.APIToken != "")

	<-ctx.Done()
	log.Info("shutting down: no new requests; the running deployment stops at its next safe point", "grace", grace.String())
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	worker.Close() // requests still in flight are answered 503, not queued
	err = srv.Close(closeCtx)
	stopWorker()
	if werr := <-workerDone; werr != nil {
		err = errors.Join(err, werr)
	}
	log.Info("stopped")
	return err
}

// serveWarnings are what serve's configuration lets through that an
// operator may not mean: logged at start-up.
func serveWarnings(cfg *config.Config) []string {
	var w []string
	if cfg.WebhookInsecure {
		w = append(w, "DEPLOY_WEBHOOK_INSECURE=true: webhooks are accepted without a valid signature; anyone who can reach /webhook can start a deploy")
	}
	if cfg.WebhookRepo == "" {
		// The signature proves only that the sender knows the secret: a
		// secret shared by several repositories' webhooks (a workspace-
		// or organisation-wide one) lets each of them deploy this app.
		w = append(w, "DEPLOY_WEBHOOK_REPO is empty: a push to "+cfg.Branch+" from any repository whose webhook has the secret is deployed; "+
			"set it to this app's repository (e.g. team/app)")
	}
	return w
}
