package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

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
	writeFile(t, filepath.Join(f.apps, ".#staging.env"), "DEPLOY_LISTEN=x\n", 0o644)
	if err := os.Mkdir(filepath.Join(f.apps, "old.env"), 0o700); err != nil {
		t.Fatal(err)
	}
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

// TestLoadSetupAppsErrors: every problem of the apps folder, each naming
// the file (and line, when the value is written there) and the variable.
func TestLoadSetupAppsErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string // "" value: unset
		envFile string            // deploy.env, when set
		files   map[string]string // app files to (over)write; "" removes one
		prepare func(t *testing.T, f appsFixture)
		want    []string // "{apps}" stands for the folder
		notWant []string
		// spaced: a file name has a space, which wantProblems does not
		// take for a file name.
		spaced bool
	}{
		{
			name:  "server-only variable in an app file",
			files: map[string]string{"staging.env": "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\n\nDEPLOY_LISTEN=:9090\n"},
			want:  []string{"{apps}/staging.env:5: DEPLOY_LISTEN is the server's, the same for every app: set it in the environment or deploy.env, not in an app file"},
		},
		{
			name:  "unknown variable in an app file",
			files: map[string]string{"production.env": "DEPLOY_BRNACH=release\n"},
			want:  []string{"{apps}/production.env:1: DEPLOY_BRNACH is not a pushdeploy variable; did you mean DEPLOY_BRANCH?"},
		},
		{
			name:  "value of the wrong type in an app file",
			files: map[string]string{"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_PARALLEL=two\nDEPLOY_POLL_INTERVAL=5\n"},
			want: []string{
				`{apps}/production.env:2: DEPLOY_PARALLEL: "two" is not a whole number`,
				`{apps}/production.env:3: DEPLOY_POLL_INTERVAL: "5" is not a duration`,
			},
		},
		{
			name:  "line that is not VARIABLE=value",
			files: map[string]string{"production.env": "DEPLOY_BRANCH=release\nDEPLOY_ROOT /srv/app\n"},
			want:  []string{"{apps}/production.env:2: not a VARIABLE=value line"},
		},
		{
			name:  "bad value in an app file, with its line",
			files: map[string]string{"staging.env": "DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_BRANCH=a..b\n"},
			want:  []string{`{apps}/staging.env:3: DEPLOY_BRANCH: branch name "a..b" contains '..'`},
		},
		{
			name: "bad shared value: named in each app that takes it",
			env:  map[string]string{"DEPLOY_ROLLBACK_ON_FAILURE": "some"},
			want: []string{
				`{apps}/production.env: DEPLOY_ROLLBACK_ON_FAILURE: "some" is neither host nor all (the value is the environment's)`,
				`{apps}/staging.env: DEPLOY_ROLLBACK_ON_FAILURE: "some" is neither host nor all (the value is the environment's)`,
			},
		},
		{
			name:    "bad shared value from deploy.env",
			envFile: "# shared\nDEPLOY_FETCH=rsync\n",
			files:   map[string]string{"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_FETCH=push\n"},
			want:    []string{`{apps}/staging.env: DEPLOY_FETCH: "rsync" is neither clone nor push (the value is from deploy.env:2)`},
			notWant: []string{"production.env"},
		},
		{
			name: "required variable nowhere",
			env:  map[string]string{"DEPLOY_REPO_URL": ""},
			want: []string{
				"{apps}/production.env: DEPLOY_REPO_URL is required: the app's git repository",
				"{apps}/staging.env: DEPLOY_REPO_URL is required",
			},
		},
		{
			name:  "hosts file of an app missing",
			files: map[string]string{"staging.env": "DEPLOY_HOSTS_FILE=/nonexistent/hosts.txt\nDEPLOY_ROOT=/srv/staging\n"},
			want:  []string{"{apps}/staging.env:1: DEPLOY_HOSTS_FILE: cannot read /nonexistent/hosts.txt"},
		},
		{
			name: "bad line in an app's hosts file",
			prepare: func(t *testing.T, f appsFixture) {
				writeFile(t, filepath.Join(f.dir, "hosts-staging.txt"), "stage1\n::1\n", 0o644)
			},
			want: []string{`{apps}/staging.env: hosts-staging.txt:2: "::1": write IPv6 addresses in brackets`},
		},
		{
			name:  "file name that is not an app name",
			files: map[string]string{"Web_2.env": "DEPLOY_ROOT=/srv/web2\n"},
			want:  []string{`{apps}/Web_2.env: "Web_2" is not an app name (lower-case letters, digits and '-', starting with a letter or digit, at most 63, e.g. staging); rename the file NAME.env`},
		},
		{
			name:  "file name too long",
			files: map[string]string{strings.Repeat("a", 64) + ".env": "DEPLOY_ROOT=/srv/a\n"},
			want:  []string{`is not an app name`},
		},
		{
			name:  "empty folder",
			files: map[string]string{"staging.env": "", "production.env": ""},
			want:  []string{"DEPLOY_APPS_DIR: {apps} holds no app file; put one NAME.env file per app in it, e.g. {apps}/staging.env (docs/apps.md)"},
		},
		{
			name: "missing folder",
			env:  map[string]string{"DEPLOY_APPS_DIR": "/nonexistent/apps"},
			want: []string{"DEPLOY_APPS_DIR: cannot read /nonexistent/apps: no such file or directory; create the folder and put one NAME.env file per app in it"},
		},
		{
			name: "folder is a file",
			prepare: func(t *testing.T, f appsFixture) {
				p := filepath.Join(f.dir, "apps-file")
				writeFile(t, p, "DEPLOY_ROOT=/x\n", 0o600)
				t.Setenv("DEPLOY_APPS_DIR", p)
			},
			want: []string{"DEPLOY_APPS_DIR: cannot read "},
		},
		{
			name:  "two apps on the same host and root",
			files: map[string]string{"staging.env": "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/app/\n"},
			want:  []string{"{apps}/staging.env:3: DEPLOY_ROOT: production and staging both deploy to web1 in /srv/app/; two apps on one host need their own roots: set another DEPLOY_ROOT in production.env or staging.env"},
		},
		{
			name: "two apps on the same hosts, default root from the environment",
			files: map[string]string{
				"staging.env":    "DEPLOY_HOSTS_FILE=hosts-production.txt\n",
				"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\n",
			},
			want: []string{"{apps}/staging.env: DEPLOY_ROOT: production and staging both deploy to web1, web2 in /srv/app;"},
		},
		{
			name:  "promote from an unknown app",
			files: map[string]string{"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_PROMOTE_FROM=stagin\n"},
			want:  []string{`{apps}/production.env:2: DEPLOY_PROMOTE_FROM: there is no app "stagin" (the apps: production, staging); name one of them`},
		},
		{
			name:  "promote from itself",
			files: map[string]string{"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_PROMOTE_FROM=production\n"},
			want:  []string{`{apps}/production.env:2: DEPLOY_PROMOTE_FROM: "production" is this app itself: an app promotes the commits another app deployed; unset it`},
		},
		{
			name: "promote from, set for every app",
			env:  map[string]string{"DEPLOY_PROMOTE_FROM": "staging"},
			want: []string{`{apps}/staging.env: DEPLOY_PROMOTE_FROM: "staging" is this app itself: an app promotes the commits another app deployed; it is set outside the app files, so every app gets it`},
		},
		{
			name:  "promote from: not an app name",
			files: map[string]string{"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_PROMOTE_FROM=Staging\n"},
			want:  []string{`{apps}/production.env:2: DEPLOY_PROMOTE_FROM: "Staging" is not an app name`},
		},
		{
			name: "promotions going round",
			files: map[string]string{
				"staging.env": "DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_PROMOTE_FROM=qa\n",
				"qa.env":      "DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/qa\nDEPLOY_PROMOTE_FROM=production\n",
			},
			want: []string{"{apps}/production.env:4: DEPLOY_PROMOTE_FROM: production promotes from staging, staging from qa, qa from production: they go round, so none of them could deploy anything"},
		},
		{
			name:    "promote from an app whose file is broken: only the file's problem",
			files:   map[string]string{"staging.env": "DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_API_TOKEN=x\n"},
			want:    []string{"{apps}/staging.env:2: DEPLOY_API_TOKEN is the server's"},
			notWant: []string{"there is no app"},
		},
		{
			name: "server problems and the app files' together",
			env:  map[string]string{"DEPLOY_LISTEN": "8080", "DEPLOY_DATABASE_URL": "mysql://u:pw@db/x"},
			files: map[string]string{
				"staging.env":    "DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_DATA_DIR=/tmp/x\n",
				"production.env": "DEPLOY_HOSTS_FILE=hosts-production.txt\nDEPLOY_KEEP_RELEASES=0\n",
				"bad name.env":   "",
			},
			want: []string{
				`DEPLOY_LISTEN: "8080" is not host:port`,
				`DEPLOY_DATABASE_URL: "mysql://u:xxxxx@db/x" is not a postgres:// or postgresql:// URL`,
				"{apps}/staging.env:3: DEPLOY_DATA_DIR is the server's",
				"{apps}/production.env:2: DEPLOY_KEEP_RELEASES: 0 is less than 1",
				`{apps}/bad name.env: "bad name" is not an app name`,
			},
			notWant: []string{"pw"},
			spaced:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setupApps(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			if tt.envFile != "" {
				writeFile(t, filepath.Join(f.dir, "deploy.env"), tt.envFile, 0o600)
			}
			for name, content := range tt.files {
				if content == "" && (name == "staging.env" || name == "production.env") {
					if err := os.Remove(filepath.Join(f.apps, name)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				f.write(t, name, content)
			}
			if tt.prepare != nil {
				tt.prepare(t, f)
			}
			s, _, err := LoadSetup("", false)
			if s != nil {
				t.Errorf("got a setup of apps %q, want none", s.Names())
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "{apps}", f.apps))
			}
			if tt.spaced {
				if err == nil {
					t.Fatal("got no error")
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error:\n%v\nwant it to contain %q", err, w)
					}
				}
			} else {
				wantProblems(t, err, want...)
			}
			for _, nw := range tt.notWant {
				if err != nil && strings.Contains(err.Error(), nw) {
					t.Errorf("got error:\n%v\nwant it without %q", err, nw)
				}
			}
		})
	}
}

// TestServerOnlyVariables: the server's variables are the contract's list
// (and the extensions that are the server's too); each one is refused in
// an app file, and every other one is taken there.
func TestServerOnlyVariables(t *testing.T) {
	want := []string{
		// The contract's list.
		"LISTEN", "API_TOKEN", "DATA_DIR", "DATABASE_URL", "WEBHOOK_INSECURE", "WEBHOOK_ALLOW_CIDRS",
		"RATE_LIMIT", "RATE_BURST", "TRUSTED_PROXIES", "STATUS_PUBLIC", "PUBLIC_URL", "HISTORY_DAYS", "APPS_DIR",
		// NODE_NAME names the deployer; WEBHOOK_MAX_BODY bounds the memory
		// of bodies not verified yet, before the app is known.
		"NODE_NAME", "WEBHOOK_MAX_BODY",
	}
	var got []string
	for _, v := range variables {
		if v.server {
			got = append(got, v.alt)
		}
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(got))); diff != "" {
		t.Errorf("server-only variables (-want +got):\n%s", diff)
	}

	f := setupApps(t)
	var b strings.Builder
	b.WriteString("DEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\n")
	var wantProbs []string
	line := 2
	for _, v := range variables {
		if !v.server {
			continue
		}
		// A valid value: only where it is set is wrong.
		value := v.def
		if value == "" {
			value = "x"
		}
		line++
		fmt.Fprintf(&b, "%s=%s\n", v.key, value)
		wantProbs = append(wantProbs, fmt.Sprintf("%s:%d: %s is the server's, the same for every app: set it in the environment or deploy.env, not in an app file",
			filepath.Join(f.apps, "staging.env"), line, v.key))
	}
	f.write(t, "staging.env", b.String())
	_, _, err := LoadSetup("", false)
	wantProblems(t, err)
	if diff := cmp.Diff(wantProbs, err.(*Error).Problems, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestAppFilePrecedence: an app's value comes from its file, else the
// environment, else the env file, else the default.
func TestAppFilePrecedence(t *testing.T) {
	f := setupApps(t)
	t.Setenv("DEPLOY_PYTHON", "python3.12")
	writeFile(t, filepath.Join(f.dir, "deploy.env"), "DEPLOY_PYTHON=python3.11\nDEPLOY_APP_THREADS=4\nDEPLOY_RESTART_CMD='sudo systemctl restart app'\n", 0o600)
	f.write(t, "staging.env", "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_PYTHON=/opt/py/bin/python3\nDEPLOY_APP_THREADS=2\n")
	s, _, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	stage, _ := s.App("staging")
	prod, _ := s.App("production")
	for _, tt := range []struct {
		what      string
		got, want any
	}{
		{"staging python (its file over the environment)", stage.Python, "/opt/py/bin/python3"},
		{"production python (the environment over deploy.env)", prod.Python, "python3.12"},
		{"staging threads (its file over deploy.env)", stage.AppThreads, 2},
		{"production threads (deploy.env over the default)", prod.AppThreads, 4},
		{"production restart (deploy.env)", prod.RestartCmd, "sudo systemctl restart app"},
		{"production processes (the default)", prod.AppProcesses, 2},
	} {
		if !cmp.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

// TestLoadSetupAppsWarnings: an app file holding a secret that others can
// read is warned about as the env file is; so are apps sharing one
// webhook secret. Neither quotes the secret.
func TestLoadSetupAppsWarnings(t *testing.T) {
	f := setupApps(t)
	stage := f.write(t, "staging.env", "DEPLOY_BRANCH=staging\nDEPLOY_HOSTS_FILE=hosts-staging.txt\nDEPLOY_ROOT=/srv/staging\nDEPLOY_WEBHOOK_SECRET=prod-s3cret\n")
	if err := os.Chmod(stage, 0o644); err != nil {
		t.Fatal(err)
	}
	_, warnings, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings(t, warnings,
		stage+" holds DEPLOY_WEBHOOK_SECRET but other users can read it (mode 0644); run chmod 600 "+stage,
		"DEPLOY_WEBHOOK_SECRET: the apps production, staging have the same secret, so a push signed for one is accepted at the others' /webhook/{app} too",
	)
	if all := strings.Join(warnings, "\n"); strings.Contains(all, "s3cret") {
		t.Errorf("a warning quotes a secret:\n%s", all)
	}
	if len(warnings) != 2 {
		t.Errorf("got %d warnings, want 2: %q", len(warnings), warnings)
	}
}

// TestExampleApps: the app files of docs/examples/apps load as they are
// (their /etc/pushdeploy paths moved into the test's folder), with
// production promoting from staging and a secret of its own.
func TestExampleApps(t *testing.T) {
	examples := map[string]string{}
	for _, name := range []string{"staging.env", "production.env"} {
		// Before setupApps, which changes the working folder.
		data, err := os.ReadFile(filepath.Join("..", "docs", "examples", "apps", name))
		if err != nil {
			t.Fatal(err)
		}
		examples[name] = string(data)
	}
	f := setupApps(t)
	for name, data := range examples {
		f.write(t, name, strings.ReplaceAll(data, "/etc/pushdeploy/", f.dir+"/"))
	}
	s, warnings, err := LoadSetup("", false)
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings(t, warnings)
	prod, _ := s.App("production")
	stage, _ := s.App("staging")
	if prod.PromoteFrom != "staging" || prod.Branch != "release" || stage.Branch != "staging" || prod.Root == stage.Root {
		t.Errorf("got production from %q on %q in %q, staging on %q in %q", prod.PromoteFrom, prod.Branch, prod.Root, stage.Branch, stage.Root)
	}
}

// TestDocsScope: docs/configuration.md marks each variable server or app
// as Config's tags do.
func TestDocsScope(t *testing.T) {
	data, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variables {
		want := "| `" + v.key + "` | app |"
		if v.server {
			want = "| `" + v.key + "` | **server** |"
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("docs/configuration.md: want the row %q…", want)
		}
	}
}
