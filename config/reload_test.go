package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReloadApps: a reload reads the app files again (not the
// environment): an unchanged app keeps its *App, a changed one is new, a
// new file adds an app, a removed one drops it; a broken file keeps the
// app's previous configuration (a new broken one is left out), each
// problem naming file, line and variable.
func TestReloadApps(t *testing.T) {
	f := setupApps(t)
	s, _, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	prod0, _ := s.App("production")
	stage0, _ := s.App("staging")

	// The environment is not read again.
	t.Setenv("DEPLOY_PARALLEL", "3")
	next, probs := s.ReloadApps()
	if len(probs) != 0 {
		t.Fatalf("reload without changes: problems %q", probs)
	}
	if p, _ := next.App("production"); p != prod0 || next.Server != s.Server || next.Dir != s.Dir {
		t.Errorf("reload without changes gave another production (%p, want %p) or server", p, prod0)
	}

	// Change staging, add qa, remove nothing.
	f.write(t, "staging.env", "DEPLOY_BRANCH=staging-2\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\n")
	f.write(t, "qa.env", "DEPLOY_BRANCH=qa\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/qa\n")
	next, probs = next.ReloadApps()
	if len(probs) != 0 {
		t.Fatalf("problems %q", probs)
	}
	if got := next.Names(); !cmp.Equal(got, []string{"production", "qa", "staging"}) {
		t.Fatalf("got apps %q", got)
	}
	stage1, _ := next.App("staging")
	if p, _ := next.App("production"); p != prod0 {
		t.Errorf("production changed though its file did not")
	}
	if stage1 == stage0 || stage1.Branch != "staging-2" || stage1.Parallel != 1 {
		t.Errorf("staging: got branch %q, parallel %d (new: %v), want staging-2, 1 (the environment is not read again), a new *App",
			stage1.Branch, stage1.Parallel, stage1 != stage0)
	}

	// Break staging, add a broken app, remove qa.
	f.write(t, "staging.env", "DEPLOY_BRANCH=staging-3\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_LISTEN=:1\n")
	f.write(t, "docs.env", "DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/docs\nDEPLOY_PARALLEL=0\n")
	if err := os.Remove(filepath.Join(f.apps, "qa.env")); err != nil {
		t.Fatal(err)
	}
	next, probs = next.ReloadApps()
	if got := next.Names(); !cmp.Equal(got, []string{"production", "staging"}) {
		t.Errorf("got apps %q, want production, staging (qa removed, docs broken)", got)
	}
	if s2, _ := next.App("staging"); s2 != stage1 {
		t.Errorf("broken staging: got branch %q, want its previous configuration", s2.Branch)
	}
	wantProblems(t, &Error{Problems: probs},
		filepath.Join(f.apps, "staging.env")+":4: DEPLOY_LISTEN is the server's",
		filepath.Join(f.apps, "docs.env")+":3: DEPLOY_PARALLEL: 0 is less than 1",
	)
	if len(probs) != 2 {
		t.Errorf("got %d problems, want 2: %q", len(probs), probs)
	}

	// The folder gone: every app goes on as it was.
	if err := os.Rename(f.apps, f.apps+".old"); err != nil {
		t.Fatal(err)
	}
	after, probs := next.ReloadApps()
	if !cmp.Equal(after.Names(), next.Names()) || len(probs) == 0 {
		t.Errorf("folder gone: got apps %q, problems %q; want the previous apps and a problem", after.Names(), probs)
	}
	wantProblems(t, &Error{Problems: probs}, "DEPLOY_APPS_DIR: cannot read ", "the apps keep their previous configuration")
}

// TestReloadAppsBetweenApps: a change that makes a problem between apps is
// undone: the changed app keeps its previous configuration, a new one is
// not started, a removed one another app promotes from keeps running.
func TestReloadAppsBetweenApps(t *testing.T) {
	f := setupApps(t)
	s, _, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	stage0, _ := s.App("staging")
	prod0, _ := s.App("production")
	stageFile := filepath.Join(f.apps, "staging.env")

	tests := []struct {
		name   string
		change func(t *testing.T)
		want   string
	}{
		{
			name: "staging moves onto production's root",
			change: func(t *testing.T) {
				f.write(t, "staging.env", "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/app\n")
			},
			want: "DEPLOY_ROOT: production and staging both deploy to web1 in /srv/app; two apps on one host need their own roots: set another DEPLOY_ROOT in production.env or staging.env (staging keeps its previous configuration)",
		},
		{
			name: "a new app on production's root",
			change: func(t *testing.T) {
				f.write(t, "api.env", "DEPLOY_HOSTS_FILE=hosts-production.txt\n")
			},
			want: "api.env: DEPLOY_ROOT: api and production both deploy to web1, web2 in /srv/app;",
		},
		{
			name: "staging removed while production promotes from it",
			change: func(t *testing.T) {
				if err := os.Remove(stageFile); err != nil {
					t.Fatal(err)
				}
			},
			want: `production.env:4: DEPLOY_PROMOTE_FROM: there is no app "staging" (the apps: production); name one of them (the app of NAME.env) (staging, whose file was removed, keeps running)`,
		},
		{
			name: "staging promotes from production: a cycle",
			change: func(t *testing.T) {
				f.write(t, "staging.env", "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_PROMOTE_FROM=production\n")
			},
			want: "production promotes from staging, staging from production: they go round",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change(t)
			t.Cleanup(func() {
				os.Remove(filepath.Join(f.apps, "api.env"))
				f.write(t, "staging.env", "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_WEBHOOK_SECRET=stage-s3cret\n")
			})
			next, probs := s.ReloadApps()
			if got := next.Names(); !cmp.Equal(got, []string{"production", "staging"}) {
				t.Errorf("got apps %q, want production, staging", got)
			}
			if st, _ := next.App("staging"); st != stage0 {
				t.Errorf("staging is not its previous configuration")
			}
			if p, _ := next.App("production"); p != prod0 {
				t.Errorf("production changed")
			}
			if len(probs) != 1 {
				t.Errorf("got %d problems, want 1: %q", len(probs), probs)
			}
			wantProblems(t, &Error{Problems: probs}, tt.want)
		})
	}
}

// TestReloadAppsReadsHostsFile: a reload reads the files an app names
// again: a host added to its hosts file changes the app.
func TestReloadAppsReadsHostsFile(t *testing.T) {
	f := setupApps(t)
	s, _, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.dir, "hosts-production.txt"), "web1\nweb2\nweb3\n", 0o644)
	next, probs := s.ReloadApps()
	if len(probs) != 0 {
		t.Fatalf("problems %q", probs)
	}
	prod0, _ := s.App("production")
	prod, _ := next.App("production")
	stage0, _ := s.App("staging")
	if stage, _ := next.App("staging"); stage != stage0 {
		t.Errorf("staging changed, though none of its files did")
	}
	if prod == prod0 || len(prod.Hosts) != 3 || len(prod0.Hosts) != 2 {
		t.Errorf("production: got %d hosts (before: %d), want 3 (2)", len(prod.Hosts), len(prod0.Hosts))
	}
}
