package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// appsFixture is setup's valid configuration with an apps folder holding
// staging.env and production.env, each with its own hosts file and
// secret; production promotes from staging.
type appsFixture struct {
	fixture
	apps string // the apps folder
}

func setupApps(t *testing.T) appsFixture {
	t.Helper()
	f := appsFixture{fixture: setup(t), apps: filepath.Join(t.TempDir(), "apps")}
	if err := os.Mkdir(f.apps, 0o700); err != nil {
		t.Fatal(err)
	}
	// The shared values stay in the environment (set by setup): the key,
	// known_hosts, the repository.
	t.Setenv("DEPLOY_APPS_DIR", f.apps)
	writeFile(t, filepath.Join(f.dir, "hosts-staging.txt"), "stage1\nweb1\n", 0o644)
	writeFile(t, filepath.Join(f.dir, "hosts-production.txt"), "web1\nweb2\n", 0o644)
	f.write(t, "staging.env", "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_WEBHOOK_SECRET=stage-s3cret\n")
	f.write(t, "production.env", "DEPLOY_BRANCH=release\nDEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_ROOT=/srv/app\nDEPLOY_PROMOTE_FROM=staging\nDEPLOY_WEBHOOK_SECRET=prod-s3cret\n")
	return f
}

// write writes the app file name (mode 0600).
func (f appsFixture) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(f.apps, name)
	writeFile(t, p, content, 0o600)
	return p
}

func TestLoadSetupOneApp(t *testing.T) {
	setup(t)
	s, warnings, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings(t, warnings)
	if s.Dir != "" || len(s.Apps) != 1 {
		t.Fatalf("got Dir %q and %d apps, want no folder and one app", s.Dir, len(s.Apps))
	}
	a := s.Apps[0]
	if a.Name != deploy.DefaultApp || a.File != "" || a.Config != s.Server {
		t.Errorf("got app %q from %q (Config is Server: %v), want %q, no file, the server's Config", a.Name, a.File, a.Config == s.Server, deploy.DefaultApp)
	}
	c, _, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, a.Config); diff != "" {
		t.Errorf("Load and LoadSetup differ (-Load +LoadSetup):\n%s", diff)
	}
	if got, ok := s.App(deploy.DefaultApp); !ok || got != a {
		t.Errorf("App(%q) = %v, %v; want the one app", deploy.DefaultApp, got, ok)
	}
	if _, ok := s.App("staging"); ok {
		t.Errorf("App(staging) found an app")
	}
	if next, probs := s.ReloadApps(); next != s || probs != nil {
		t.Errorf("ReloadApps without a folder = %p, %q; want the same setup, no problems", next, probs)
	}
}

func TestLoadSetupApps(t *testing.T) {
	f := setupApps(t)
	t.Setenv("DEPLOY_KEEP_RELEASES", "7") // shared, from the environment
	writeFile(t, filepath.Join(f.apps, "README"), "not an app\n", 0o644)
	writeFile(t, filepath.Join(f.apps, "staging.env~"), "DEPLOY_LISTEN=x\n", 0o644)
	s, warnings, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings(t, warnings)
	if got := s.Names(); !cmp.Equal(got, []string{"production", "staging"}) {
		t.Fatalf("got apps %q, want production, staging", got)
	}
	if s.Dir != f.apps || s.Server.AppsDir != f.apps {
		t.Errorf("got Dir %q, AppsDir %q, want %q", s.Dir, s.Server.AppsDir, f.apps)
	}
	prod, _ := s.App("production")
	stage, _ := s.App("staging")
	if prod.File != filepath.Join(f.apps, "production.env") || stage.File != filepath.Join(f.apps, "staging.env") {
		t.Errorf("got files %q, %q", prod.File, stage.File)
	}
	for _, tt := range []struct {
		what      string
		got, want any
	}{
		{"production branch", prod.Branch, "release"},
		{"staging branch", stage.Branch, "staging"},
		{"production root", prod.Root, "/srv/app"},
		{"staging root", stage.Root, "/srv/staging"},
		{"production promotes from", prod.PromoteFrom, "staging"},
		{"staging promotes from", stage.PromoteFrom, ""},
		{"production secret", prod.WebhookSecret, "prod-s3cret"},
		{"staging secret", stage.WebhookSecret, "stage-s3cret"},
		{"production repo (from the environment)", prod.RepoURL, "git@bitbucket.org:team/app.git"},
		{"staging keep releases (from the environment)", stage.KeepReleases, 7},
		{"production hosts", len(prod.Hosts), 2},
		{"staging first host", stage.Hosts[0].Name, "stage1"},
		{"production key loaded", len(prod.SSHKeyPEM) > 0, true},
		{"server listen", prod.Listen, ":8080"},
		{"server data dir", stage.DataDir, s.Server.DataDir},
	} {
		if !cmp.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.what, tt.got, tt.want)
		}
	}
	if _, _, err := Load("", false); err == nil || !strings.Contains(err.Error(), "holds 2 apps (production, staging)") {
		t.Errorf("Load with two apps: got %v, want an error naming them", err)
	}
}
