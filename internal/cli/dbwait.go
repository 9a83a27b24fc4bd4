package cli

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/history"
)

// backoff is how long serve waits between tries of a database it cannot
// reach at start-up: First, then twice as long each time, up to Max.
type backoff struct{ First, Max time.Duration }

// dbBackoff is serve's: a database that comes up in a few seconds (both
// started at boot) is found at once; one that is down for long is tried
// twice a minute, and every try is logged.
var dbBackoff = backoff{First: time.Second, Max: 30 * time.Second}

// errStoppedWaiting is serve stopped (SIGTERM, SIGINT) while it waited for
// the database: it exits 0, as a serve stopped at any other time.
var errStoppedWaiting = errors.New("stopped while waiting for the database")

// awaitDatabase runs open until it succeeds, fails for another reason
// than a database out of reach (history.Unreachable: a wrong password is
// reported at once), or ctx ends (errStoppedWaiting). Each failure is
// logged naming DEPLOY_DATABASE_URL, without its password, and the cause.
// Without DEPLOY_DATABASE_URL (SQLite) open runs once.
func awaitDatabase[T any](ctx context.Context, cfg *config.Config, log *slog.Logger, b backoff, open func(context.Context) (T, error)) (T, error) {
	wait := b.First
	for {
		v, err := open(ctx)
		if err == nil || cfg.DatabaseURL == "" || !history.Unreachable(err) {
			return v, err
		}
		if ctx.Err() != nil {
			return v, errStoppedWaiting
		}
		log.Error("DEPLOY_DATABASE_URL: the database cannot be reached; serve starts once it can",
			"database", config.RedactDatabaseURL(cfg.DatabaseURL), "error", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, errStoppedWaiting
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
