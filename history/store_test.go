package history_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/history/historytest"
)

// The tests of what only SQLite does; the conformance suite (TestSQLite)
// tests the rest.

var (
	ctx = context.Background()
	t0  = historytest.T0
	sha = historytest.Commit
)

func open(t *testing.T, dir string, opts history.Options) *history.SQLite {
	t.Helper()
	s, err := history.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// oldDatabase makes, in a new folder, a database left at schema version
// with the rows the statements insert, as an older pushdeploy left it.
func oldDatabase(t *testing.T, version int, stmts ...string) string {
	t.Helper()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", history.DSN(filepath.Join(dir, history.FileName)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := history.Migrate(ctx, db, history.Migrations[:version]); err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return dir
}

// upToDate fails the test when s's schema is not the newest.
func upToDate(t *testing.T, s *history.SQLite) {
	t.Helper()
	var version int
	if err := s.DB().QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != len(history.Migrations) {
		t.Fatalf("schema version %d (%v), want %d", version, err, len(history.Migrations))
	}
}

// TestSQLite runs the conformance suite on SQLite: each database is a
// new data folder.
func TestSQLite(t *testing.T) {
	historytest.Run(t, func(t *testing.T) historytest.Opener {
		dir := t.TempDir()
		return func(ctx context.Context, opts history.Options) (history.Store, error) {
			return history.Open(ctx, dir, opts)
		}
	})
}

// TestMigrateFromVersion1 opens a database left at schema version 1 with a
// row in it: Open brings it to the current version and keeps the row.
func TestMigrateFromVersion1(t *testing.T) {
	dir := oldDatabase(t, 1,
		fmt.Sprintf(`INSERT INTO deployments (id, action, triggered_by, status, queued, started, finished, deployed_commit)
			VALUES ('old-1', 'deploy', 'webhook', 'succeeded', '%s', '%[1]s', '%s', '%s')`, history.FmtTime(t0), history.FmtTime(t0.Add(time.Second)), sha('a')),
		`INSERT INTO steps (deployment_id, host, idx, step, status, duration_s) VALUES ('old-1', 'web1', 0, 'clone', 'succeeded', 0.5)`)
	s := open(t, dir, history.Options{})
	upToDate(t, s)
	d, ok, err := s.Deployment(ctx, "old-1")
	if err != nil || !ok {
		t.Fatalf("old row: %v %v", ok, err)
	}
	if d.Status != deploy.StatusSucceeded || d.Release.Commit != sha('a') || len(d.Hosts) != 1 || len(d.Hosts[0].Steps) != 1 ||
		d.Hosts[0].Steps[0].Duration != 500*time.Millisecond || d.App != deploy.DefaultApp {
		t.Errorf("old row after migration: %+v %+v", d, d.Hosts)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after migration: %v", err)
	}
	s.Close()
	// Opening again runs nothing more.
	open(t, dir, history.Options{}).Close()
}

// TestMigrateFromVersion2 opens a database of before several apps
// (schema version 2) holding a finished and a running deployment: Open
// adds the app column, the old rows read back as the default app's (also
// through Filter.App, Latest and HostsDeployed), and the new index is
// there.
func TestMigrateFromVersion2(t *testing.T) {
	self := history.Self()
	dir := oldDatabase(t, 2,
		fmt.Sprintf(`INSERT INTO deployments (id, action, triggered_by, status, queued, started, finished, deployed_commit, owner_pid, owner_host, owner_start)
			VALUES ('old-1', 'deploy', 'webhook', 'succeeded', '%s', '%[1]s', '%s', '%s', 0, '', '')`, history.FmtTime(t0), history.FmtTime(t0.Add(time.Second)), sha('a')),
		`INSERT INTO deployment_hosts (deployment_id, host, idx, status, duration_s) VALUES ('old-1', 'web1', 0, 'succeeded', 0.5)`,
		fmt.Sprintf(`INSERT INTO deployments (id, action, triggered_by, status, queued, started, owner_pid, owner_host, owner_start)
			VALUES ('old-2', 'deploy', 'cli', 'running', '%s', '%[1]s', %d, '%s', '%s')`, history.FmtTime(t0.Add(time.Minute)), self.PID, self.Host, self.Start))
	s := open(t, dir, history.Options{})
	upToDate(t, s)
	for _, id := range []string{"old-1", "old-2"} {
		d, ok, err := s.Deployment(ctx, id)
		if err != nil || !ok {
			t.Fatalf("old row %s: %v %v", id, ok, err)
		}
		if d.App != deploy.DefaultApp {
			t.Errorf("old row %s: app %q, want %q", id, d.App, deploy.DefaultApp)
		}
	}
	list, err := s.Deployments(ctx, deploy.Filter{App: deploy.DefaultApp})
	if err != nil || len(list) != 2 || list[0].ID != "old-2" || list[1].ID != "old-1" {
		t.Errorf("Filter.App default: %v (%v), want old-2, old-1", list, err)
	}
	if d, ok, err := s.Latest(ctx, deploy.DefaultApp); err != nil || !ok || d.ID != "old-2" {
		t.Errorf("Latest(default) = %v, %v, %v; want old-2", d, ok, err)
	}
	if hosts, err := s.HostsDeployed(ctx, deploy.DefaultApp, sha('a')); err != nil || !slices.Equal(hosts, []string{"web1"}) {
		t.Errorf("HostsDeployed(default, a) = %v, %v; want web1", hosts, err)
	}
	if plan := queryPlan(t, s.DB(), `SELECT id FROM deployments WHERE app = 'default' ORDER BY queued DESC, id DESC LIMIT 1`); !strings.Contains(plan, "deployments_app_newest") {
		t.Errorf("one app's newest deployment is not looked up by its index: %s", plan)
	}
}

// queryPlan returns SQLite's plan for q, its details joined.
func queryPlan(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(`EXPLAIN QUERY PLAN ` + q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var details []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		details = append(details, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(details, "; ")
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := oldDatabase(t, len(history.Migrations), fmt.Sprintf(`PRAGMA user_version = %d`, len(history.Migrations)+1))
	if _, err := history.Open(ctx, dir, history.Options{}); !errors.Is(err, history.ErrNewerSchema) {
		t.Fatalf("Open of a newer database: %v, want ErrNewerSchema", err)
	}
}

func TestFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, history.Options{})
	if err := s.Save(ctx, &deploy.Deployment{ID: "x", Action: "deploy", Status: deploy.StatusQueued, Queued: t0}, history.Self()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{history.FileName, history.FileName + "-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	var mode string
	if err := s.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q (%v), want wal", mode, err)
	}
}

func TestOpenFailsOnUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere: a missing folder fails the same way.
		if _, err := history.Open(ctx, filepath.Join(t.TempDir(), "missing"), history.Options{}); err == nil {
			t.Fatal("Open in a missing folder succeeded")
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if _, err := history.Open(ctx, dir, history.Options{}); err == nil {
		t.Fatal("Open in a read-only folder succeeded")
	}
}

// TestPruneTakesHostsAndSteps: a pruned deployment's host and step rows go
// with it (the API cannot see rows left behind; the file would grow).
func TestPruneTakesHostsAndSteps(t *testing.T) {
	now := t0.AddDate(0, 0, 200)
	dir := t.TempDir()
	s := open(t, dir, history.Options{Now: func() time.Time { return now }})
	for _, d := range []*deploy.Deployment{
		{ID: "old", Status: deploy.StatusSucceeded, Queued: now.AddDate(0, 0, -100), Finished: now.AddDate(0, 0, -100)},
		{ID: "recent", Status: deploy.StatusFailed, Queued: now.AddDate(0, 0, -10), Finished: now.AddDate(0, 0, -10)},
	} {
		d.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: d.Status, Steps: []deploy.StepResult{{Name: "clone", Status: d.Status}}}}
		if err := s.Save(ctx, d, history.Self()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, dir, history.Options{Days: 90, Now: func() time.Time { return now }})
	var steps, hosts int
	_ = s.DB().QueryRow(`SELECT count(*) FROM steps`).Scan(&steps)
	_ = s.DB().QueryRow(`SELECT count(*) FROM deployment_hosts`).Scan(&hosts)
	if steps != 1 || hosts != 1 {
		t.Errorf("%d step rows, %d host rows left; want 1 of each (a pruned deployment's go with it)", steps, hosts)
	}
}
