package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pushdeploy/pushdeploy/deploy"
)

var ctx = context.Background()

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sameDeployment compares deployments as the store keeps them: errors by
// their text, times by instant, no unexported state.
var sameDeployment = cmp.Options{
	cmpopts.IgnoreUnexported(deploy.Deployment{}),
	cmp.Comparer(func(a, b error) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return a.Error() == b.Error()
	}),
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
}

var t0 = time.Date(2026, 11, 25, 20, 39, 53, 290_000_123, time.UTC)

func sha(c byte) string {
	b := make([]byte, 40)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestSaveAndReadBack(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	for _, tc := range []struct {
		name string
		dep  *deploy.Deployment
	}{
		{"queued, nothing known yet", &deploy.Deployment{
			ID: "20261125-203953-000001", Action: "deploy", Status: deploy.StatusQueued, Queued: t0,
			Request: deploy.Request{Trigger: "api", Actor: "api", Push: deploy.Push{Branch: "release", Commit: sha('c')}, Hosts: []string{"web2", "web3"}},
		}},
		{"webhook deploy that succeeded on two hosts", &deploy.Deployment{
			ID: "20261125-203953-000002", Action: "deploy", Status: deploy.StatusSucceeded,
			Queued: t0, Started: t0.Add(time.Second), Finished: t0.Add(12 * time.Second),
			Request: deploy.Request{Trigger: "webhook", Provider: "bitbucket-cloud", DeliveryID: "d-1", Actor: "Ada",
				Push: deploy.Push{Branch: "release"}, PayloadCommit: sha('a')},
			Release: deploy.Release{Branch: "release", Commit: sha('a')}, ReleaseName: "20261125203954-aaaaaaa",
			Hosts: []*deploy.HostResult{
				{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded, Duration: 4500 * time.Millisecond, Steps: []deploy.StepResult{
					{Name: "connect", Status: deploy.StatusSucceeded, Started: t0.Add(time.Second), Duration: 60 * time.Millisecond},
					{Name: "venv", Status: deploy.StatusSucceeded, Started: t0.Add(2 * time.Second), Duration: 4620 * time.Millisecond, Output: "created virtual environment\n…"},
				}},
				{Host: deploy.Host{Name: "deploy@[::1]:2222"}, Status: deploy.StatusSucceeded, Duration: time.Second, Steps: []deploy.StepResult{
					{Name: "restart", Status: deploy.StatusSucceeded, Started: t0.Add(11 * time.Second), Duration: 410 * time.Millisecond},
					{Name: "restart", Status: deploy.StatusSucceeded, Started: t0.Add(11*time.Second + 500*time.Millisecond), Duration: 1},
				}},
			},
		}},
		{"failed with the step's output", &deploy.Deployment{
			ID: "20261125-203953-000003", Action: "deploy", Status: deploy.StatusFailed,
			Queued: t0, Started: t0, Finished: t0.Add(time.Minute),
			Request: deploy.Request{Trigger: "cli", Actor: "root", Push: deploy.Push{Branch: "release"}},
			Release: deploy.Release{Branch: "release", Commit: sha('b')}, ReleaseName: "20261125203953-bbbbbbb",
			Err: errors.New("host web1: pip: exit status 1\n    ERROR: no matching distribution for broken==1.0"),
			Hosts: []*deploy.HostResult{
				{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusFailed, Steps: []deploy.StepResult{
					{Name: "pip", Status: deploy.StatusFailed, Started: t0, Duration: time.Second, Err: errors.New("exit status 1"), Output: "ERROR: no matching distribution"},
				}},
				{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusSkipped},
			},
		}},
		{"rollback to a named release", &deploy.Deployment{
			ID: "20261125-203953-000004", Action: "rollback", Status: deploy.StatusSucceeded,
			Queued: t0, Started: t0, Finished: t0.Add(time.Second),
			Request: deploy.Request{Action: "rollback", Trigger: "cli", Actor: "ops", Release: "20261125183400-1a2b3c4"},
			Release: deploy.Release{Commit: sha('1')}, ReleaseName: "20261125183400-1a2b3c4",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Save(ctx, tc.dep, Self()); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Deployment(ctx, tc.dep.ID)
			if err != nil || !ok {
				t.Fatalf("Deployment(%s): %v, %v", tc.dep.ID, ok, err)
			}
			if diff := cmp.Diff(tc.dep, got, sameDeployment); diff != "" {
				t.Errorf("read back differs (-saved +read):\n%s", diff)
			}
			// Saving again (a later snapshot) replaces, never duplicates.
			if err := s.Save(ctx, tc.dep, Self()); err != nil {
				t.Fatal(err)
			}
			again, _, _ := s.Deployment(ctx, tc.dep.ID)
			if diff := cmp.Diff(tc.dep, again, sameDeployment); diff != "" {
				t.Errorf("saved twice (-saved +read):\n%s", diff)
			}
		})
	}
	if _, ok, err := s.Deployment(ctx, "nope"); ok || err != nil {
		t.Errorf("unknown id: %v, %v; want false, nil", ok, err)
	}
}

func TestDeploymentsFilters(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	var all []*deploy.Deployment
	statuses := []deploy.Status{deploy.StatusSucceeded, deploy.StatusFailed, deploy.StatusRunning, deploy.StatusSucceeded, deploy.StatusQueued}
	for i, st := range statuses {
		d := &deploy.Deployment{ID: fmt.Sprintf("20261125-2039%02d-00000%d", i, i), Action: "deploy", Status: st, Queued: t0.Add(time.Duration(i) * time.Minute),
			Request: deploy.Request{Trigger: "api", Push: deploy.Push{Branch: "release"}}}
		if st != deploy.StatusQueued {
			d.Release.Commit = sha("abcde"[i])
		} else {
			d.Request.Push.Commit = sha('f')
		}
		if err := s.Save(ctx, d, Self()); err != nil {
			t.Fatal(err)
		}
		all = append([]*deploy.Deployment{d}, all...) // newest first
	}
	// Two queued in the same instant: the id decides.
	same := &deploy.Deployment{ID: all[0].ID + "z", Action: "deploy", Status: deploy.StatusQueued, Queued: all[0].Queued}
	if err := s.Save(ctx, same, Self()); err != nil {
		t.Fatal(err)
	}
	all = append([]*deploy.Deployment{same}, all...)
	ids := func(ds []*deploy.Deployment) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    deploy.Filter
		want []*deploy.Deployment
	}{
		{"everything, newest first", deploy.Filter{}, all},
		{"limit", deploy.Filter{Limit: 2}, all[:2]},
		{"before", deploy.Filter{BeforeID: all[1].ID, BeforeQueued: all[1].Queued, Limit: 2}, all[2:4]},
		{"before in the same instant", deploy.Filter{BeforeID: same.ID, BeforeQueued: same.Queued}, all[1:]},
		{"status", deploy.Filter{Status: deploy.StatusSucceeded}, []*deploy.Deployment{all[2], all[5]}},
		{"commit prefix", deploy.Filter{Commit: "bbb"}, []*deploy.Deployment{all[4]}},
		{"commit prefix of a queued request", deploy.Filter{Commit: "ff"}, []*deploy.Deployment{all[1]}},
		{"since", deploy.Filter{Since: t0.Add(3 * time.Minute)}, all[:3]},
		{"nothing", deploy.Filter{Status: deploy.StatusInterrupted}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Deployments(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ids(tc.want), ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			// The in-memory filter agrees with the database.
			var mem []*deploy.Deployment
			for _, d := range all {
				if tc.f.Match(d) && (tc.f.Limit == 0 || len(mem) < tc.f.Limit) {
					mem = append(mem, d)
				}
			}
			if diff := cmp.Diff(ids(tc.want), ids(mem)); diff != "" {
				t.Errorf("Filter.Match disagrees (-database +memory):\n%s", diff)
			}
		})
	}
}

// TestMigrateFromVersion1 opens a database left at schema version 1 with a
// row in it: Open brings it to the current version and keeps the row.
func TestMigrateFromVersion1(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName)))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO deployments (id, action, triggered_by, status, queued, started, finished, deployed_commit)
		VALUES ('old-1', 'deploy', 'webhook', 'succeeded', ?, ?, ?, ?)`, fmtTime(t0), fmtTime(t0), fmtTime(t0.Add(time.Second)), sha('a'))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO steps (deployment_id, host, idx, step, status, duration_s) VALUES ('old-1', 'web1', 0, 'clone', 'succeeded', 0.5)`)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, dir, Options{})
	var version int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version %d (%v), want %d", version, err, len(migrations))
	}
	d, ok, err := s.Deployment(ctx, "old-1")
	if err != nil || !ok {
		t.Fatalf("old row: %v %v", ok, err)
	}
	if d.Status != deploy.StatusSucceeded || d.Release.Commit != sha('a') || len(d.Hosts) != 1 || len(d.Hosts[0].Steps) != 1 ||
		d.Hosts[0].Steps[0].Duration != 500*time.Millisecond {
		t.Errorf("old row after migration: %+v %+v", d, d.Hosts)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after migration: %v", err)
	}
	s.Close()
	// Opening again runs nothing more.
	open(t, dir, Options{}).Close()
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{}).Close()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, dir, Options{}); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a newer database: %v, want ErrNewerSchema", err)
	}
}

func TestFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if err := s.Save(ctx, &deploy.Deployment{ID: "x", Action: "deploy", Status: deploy.StatusQueued, Queued: t0}, Self()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{FileName, FileName + "-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	var mode string
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q (%v), want wal", mode, err)
	}
}

func TestOpenFailsOnUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere: a missing folder fails the same way.
		if _, err := Open(ctx, filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
			t.Fatal("Open in a missing folder succeeded")
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, Options{}); err == nil {
		t.Fatal("Open in a read-only folder succeeded")
	}
}

// TestTwoProcessesWriteAtOnce: serve and a CLI deploy share the file.
// Two stores (two connection pools, as two processes would have) write
// at the same time; the busy timeout makes them take turns.
func TestTwoWritersAtOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir, Options{}), open(t, dir, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w, s := range []*Store{a, b} {
		wg.Go(func() {
			for i := range 50 {
				d := &deploy.Deployment{ID: fmt.Sprintf("%d-%02d", w, i), Action: "deploy", Status: deploy.StatusRunning, Queued: t0,
					Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning,
						Steps: []deploy.StepResult{{Name: "clone", Status: deploy.StatusRunning, Started: t0}}}}}
				if err := s.Save(ctx, d, Self()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := a.Deployments(ctx, deploy.Filter{})
	if err != nil || len(all) != 100 {
		t.Fatalf("%d deployments (%v), want 100", len(all), err)
	}
}

func TestPrune(t *testing.T) {
	now := t0.AddDate(0, 0, 200)
	for _, tc := range []struct {
		days int
		want []string
	}{
		{90, []string{"recent", "running-for-ever"}},
		{0, []string{"old", "recent", "running-for-ever"}},
		{365, []string{"old", "recent", "running-for-ever"}},
	} {
		t.Run(fmt.Sprint(tc.days, " days"), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{Days: 0, Now: func() time.Time { return now }})
			for _, d := range []*deploy.Deployment{
				{ID: "old", Status: deploy.StatusSucceeded, Queued: now.AddDate(0, 0, -100), Finished: now.AddDate(0, 0, -100)},
				{ID: "recent", Status: deploy.StatusFailed, Queued: now.AddDate(0, 0, -10), Finished: now.AddDate(0, 0, -10)},
				// Never finished, and owned by this live process: kept.
				{ID: "running-for-ever", Status: deploy.StatusRunning, Queued: now.AddDate(0, 0, -150)},
			} {
				d.Action = "deploy"
				d.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: d.Status, Steps: []deploy.StepResult{{Name: "clone", Status: d.Status}}}}
				if err := s.Save(ctx, d, Self()); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			// Pruned at open.
			s = open(t, dir, Options{Days: tc.days, Now: func() time.Time { return now }})
			got, err := s.Deployments(ctx, deploy.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range got {
				ids = append(ids, d.ID)
			}
			if diff := cmp.Diff(tc.want, slices.Sorted(slices.Values(ids))); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			var steps, hosts int
			_ = s.db.QueryRow(`SELECT count(*) FROM steps`).Scan(&steps)
			_ = s.db.QueryRow(`SELECT count(*) FROM deployment_hosts`).Scan(&hosts)
			if steps != len(tc.want) || hosts != len(tc.want) {
				t.Errorf("%d step rows, %d host rows left; want %d of each (a pruned deployment's go with it)", steps, hosts, len(tc.want))
			}
		})
	}
}
