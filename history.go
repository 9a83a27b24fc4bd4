package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// record is the deployment history of one command: the store, and the
// recorder that writes the deployments it hears of into it.
type record struct {
	store *history.Store
	rec   *history.Recorder
}

// openHistory opens the history database in DEPLOY_DATA_DIR (marking the
// deployments of deployers that are gone as interrupted, and removing the
// rows older than DEPLOY_HISTORY_DAYS) and starts its recorder. pruneEvery
// > 0 prunes again that often, for a long-running serve.
func openHistory(ctx context.Context, cfg *config.Config, log *slog.Logger, pruneEvery time.Duration) (*record, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}
	st, err := history.Open(ctx, cfg.DataDir, history.Options{Days: cfg.HistoryDays, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}
	rec := history.NewRecorder(st, log)
	rec.PruneEvery = pruneEvery
	rec.Start()
	return &record{store: st, rec: rec}, nil
}

// Close writes what the recorder still holds, then closes the database.
// Call it after the last deployment has ended.
func (r *record) Close(log *slog.Logger) {
	r.rec.Close()
	if err := r.store.Close(); err != nil {
		log.Error("history: close", "error", err)
	}
}

// recordCLI opens the history for a deploy or rollback run from the
// command line and makes d record its deployments; the returned func
// flushes and closes it (call it before the command returns). When the
// history cannot be opened, the deploy goes on with a warning: the
// history is a record of deploys, and a full disk or a read-only data
// folder must not keep anyone from shipping or rolling back a fix (each
// host's revisions.log still records the switch).
func recordCLI(ctx context.Context, cfg *config.Config, d *deploy.Deployer, log *slog.Logger) func() {
	r, err := openHistory(ctx, cfg, log, 0)
	if err != nil {
		log.Warn("this deployment is not recorded in the history", "error", err)
		return func() {}
	}
	addObserver(d, r.rec)
	return func() { r.Close(log) }
}

// osUser names who ran a CLI deployment, for the record.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}
