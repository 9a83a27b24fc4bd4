package cli

// turn.go: with DEPLOY_DATABASE_URL, the command line's deploy and
// rollback take part in the deployment queue like a deployer: the
// deployment waits its turn behind what the deployers run and queued (or,
// with --no-wait, starts at once or is refused), holds the app while it
// runs, and is finished in the queue with its outcome.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/queue"
	"github.com/spf13/cobra"
)

// cliOwner is the command line's name in the queue: never a deployer's
// (DEPLOY_NODE_NAME is serve's), so that no deployer runs its
// deployment for it.
func cliOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("cli:%s@%s:%d", osUser(), host, os.Getpid())
}

// takeTurn puts dep (not started yet) in app's queue and returns once it
// is dep's turn, holding the app: without noWait it waits behind what
// runs and waits (telling stderr who holds the app), with noWait it is
// refused at once when anything does (a *queue.BusyError naming the
// deployment and its deployer: exit 1). The returned func, called once
// the deployment has ended, finishes it in the queue. Without
// DEPLOY_DATABASE_URL there is no shared queue: nothing to wait for (the
// host locks keep a command line and serve apart, as ever).
func takeTurn(ctx context.Context, cfg *config.Config, log *slog.Logger, stderr io.Writer, dep *deploy.Deployment, noWait bool) (done func(), err error) {
	if cfg.DatabaseURL == "" {
		return func() {}, nil
	}
	q, err := queue.OpenPostgres(ctx, cfg.DatabaseURL, queue.Options{Owner: cliOwner(), Lease: queueLeaseFor()})
	if err != nil {
		return nil, fmt.Errorf("DEPLOY_DATABASE_URL: %w", err)
	}
	app := dep.App
	if app == "" {
		app = deploy.DefaultApp
	}
	var c *queue.Claim
	if noWait {
		c, err = q.ClaimNow(ctx, app, dep.ID, dep.Request)
	} else {
		c, err = q.Wait(ctx, app, dep.ID, dep.Request, func(be *queue.BusyError) {
			fmt.Fprintf(stderr, "waiting for its turn: %v\n", be)
		})
	}
	var be *queue.BusyError
	switch {
	case errors.As(err, &be):
		q.Close()
		return nil, fmt.Errorf("--no-wait: %w: nothing was done", be)
	case err != nil:
		q.Close()
		return nil, fmt.Errorf("deployment queue: %w", err)
	}
	lease := queue.NewLease(q, c)
	// The claim outlives ^C: the deployment stops at its next safe point
	// and is finished in the queue.
	held, stop := lease.Hold(context.WithoutCancel(ctx))
	dep.Fence(held)
	unwatch := context.AfterFunc(held, func() {
		log.Error("the claim on the app was lost (the database unreachable for most of a lease): the deployment stops", "deployment", dep.ID)
		dep.Stop()
	})
	return func() {
		unwatch()
		stop()
		defer q.Close()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := lease.Finish(fctx, dep.Snapshot().Status); err != nil {
			log.Warn("deployment queue: the end of the deployment was not recorded there; a deployer expires its claim", "deployment", dep.ID, "error", err)
		}
	}, nil
}

// addNoWaitFlag gives deploy and rollback --no-wait.
func addNoWaitFlag(cmd *cobra.Command, noWait *bool) {
	cmd.Flags().BoolVar(noWait, "no-wait", false, "with DEPLOY_DATABASE_URL: start at once, or fail (exit 1) naming who holds the app, instead of waiting for its turn")
}
