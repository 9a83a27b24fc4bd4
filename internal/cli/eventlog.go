package cli

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/eventlog"
	"github.com/pushdeploy/pushdeploy/history"
)

// openEventLog opens the log of live events in the history's database
// (DEPLOY_DATABASE_URL, else DEPLOY_DATA_DIR's history.db): the deployments
// this process runs are written there, and serve streams from it the
// deployments other deployers (or a command-line deploy) run. records is
// the history, which ends a stream whose deployer died.
func openEventLog(ctx context.Context, cfg *config.Config, log *slog.Logger, records eventlog.Records) (*eventlog.Log, error) {
	opts := eventlog.Options{Records: records, Logger: log}
	if cfg.DatabaseURL != "" {
		l, err := eventlog.OpenPostgres(ctx, cfg.DatabaseURL, opts)
		if err != nil {
			return nil, fmt.Errorf("DEPLOY_DATABASE_URL: %w", err)
		}
		return l, nil
	}
	l, err := eventlog.OpenSQLite(ctx, filepath.Join(cfg.DataDir, history.FileName), opts)
	if err != nil {
		return nil, fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}
	return l, nil
}

// closeEventLog writes the last events (bounded) and closes the log; after
// the deployments it observes have ended.
func closeEventLog(l *eventlog.Log, log *slog.Logger) {
	if err := l.Close(); err != nil {
		log.Error("event log: close", "error", err)
	}
}

// shareEvents makes a command-line deployment's events live for serve
// too (its status page and event streams); the returned func writes the
// last ones and closes the log. Without the log the deploy goes on, with a
// warning, as without the history.
func shareEvents(ctx context.Context, cfg *config.Config, d *deploy.Deployer, log *slog.Logger, records eventlog.Records) func() {
	l, err := openEventLog(ctx, cfg, log, records)
	if err != nil {
		log.Warn("this deployment is not shown live by serve", "error", err)
		return func() {}
	}
	addObserver(d, l)
	return func() { closeEventLog(l, log) }
}
