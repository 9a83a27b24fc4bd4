package cli

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// TestOpenStoreSelectsTheEngine: the history is in DEPLOY_DATA_DIR's
// SQLite database, or in PostgreSQL when DEPLOY_DATABASE_URL is set (and
// then nothing is written in the data folder).
func TestOpenStoreSelectsTheEngine(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	srv := pgtest.Start(t)
	for _, tc := range []struct {
		name   string
		url    string
		want   string
		dbFile bool
	}{
		{"SQLite without DEPLOY_DATABASE_URL", "", "*history.SQLite", true},
		{"PostgreSQL with DEPLOY_DATABASE_URL", srv.NewDatabase(t), "*history.Postgres", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{DataDir: t.TempDir(), DatabaseURL: tc.url, HistoryDays: 90}
			r, err := openHistory(ctx, cfg, log, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			switch r.store.(type) {
			case *history.SQLite:
				got = "*history.SQLite"
			case *history.Postgres:
				got = "*history.Postgres"
			}
			if got != tc.want {
				t.Errorf("store %T, want %s", r.store, tc.want)
			}
			dep := &deploy.Deployment{ID: "20261125-203953-000001", App: "staging", Action: deploy.ActionDeploy, Status: deploy.StatusQueued}
			if err := r.store.Save(ctx, dep, r.store.Owner()); err != nil {
				t.Fatal(err)
			}
			r.Close(log)
			// The next command reads it back.
			st, err := openStore(ctx, cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if d, ok, err := st.Latest(ctx, "staging"); err != nil || !ok || d.ID != dep.ID {
				t.Errorf("Latest(staging) = %v, %v, %v; want %s", d, ok, err, dep.ID)
			}
			_, err = os.Stat(filepath.Join(cfg.DataDir, history.FileName))
			if exists := !errors.Is(err, fs.ErrNotExist); exists != tc.dbFile {
				t.Errorf("%s in DEPLOY_DATA_DIR: %v, want %v", history.FileName, exists, tc.dbFile)
			}
		})
	}
	// A database that cannot be reached is named, without its password.
	cfg := &config.Config{DataDir: t.TempDir(), DatabaseURL: "postgres://u:hidden@127.0.0.1:1/x?connect_timeout=2&sslmode=disable"}
	if _, err := openStore(ctx, cfg, log); err == nil || !strings.Contains(err.Error(), "DEPLOY_DATABASE_URL: history database postgres://u:xxxxx@127.0.0.1:1/x") || strings.Contains(err.Error(), "hidden") {
		t.Errorf("unreachable database: %v", err)
	}
}
