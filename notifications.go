package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/notify"
)

// newNotifier returns the notifier DEPLOY_NOTIFY_URL and
// DEPLOY_BITBUCKET_TOKEN ask for, or nil when neither is set. The caller
// owns it: closeNotifier delivers what is queued.
func newNotifier(cfg *config.Config, log *slog.Logger) (*notify.Notifier, error) {
	if cfg.NotifyURL == "" && cfg.BitbucketToken == "" {
		return nil, nil
	}
	nc := notify.Config{URL: cfg.NotifyURL, PublicURL: cfg.PublicURL, Logger: log}
	if cfg.BitbucketToken != "" {
		// Validate made sure the repository is known.
		workspace, slug, _ := cfg.BitbucketRepo()
		nc.Bitbucket = &notify.Bitbucket{APIURL: cfg.BitbucketAPIURL, Token: cfg.BitbucketToken, Workspace: workspace, RepoSlug: slug}
	}
	return notify.New(nc)
}

// closeNotifier waits up to limit for the queued notifications to be
// delivered; what is left is logged, and never changes the exit status
// (a notification never fails a deployment).
func closeNotifier(n *notify.Notifier, log *slog.Logger, limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		log.Warn("notifications not sent", "error", err)
	}
}

// addObserver makes o hear d's deployments besides any observer d has.
func addObserver(d *deploy.Deployer, o deploy.Observer) {
	if d.Observer == nil {
		d.Observer = o
		return
	}
	d.Observer = deploy.Observers{d.Observer, o}
}

// notifyCLI makes d's deployments notified, for the deploy and rollback
// commands. The returned func waits (30 s at most) for the notifications
// to be delivered before the command exits.
func notifyCLI(cfg *config.Config, log *slog.Logger, d *deploy.Deployer) (wait func(), err error) {
	n, err := newNotifier(cfg, log)
	if err != nil || n == nil {
		return func() {}, err
	}
	addObserver(d, n)
	return func() { closeNotifier(n, log, 30*time.Second) }, nil
}
