package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// appsSetup is a configuration with DEPLOY_APPS_DIR in a temporary folder:
// an env file with what the apps share, and one NAME.env per app whose
// hosts are all `local` (so that no SSH key is needed).
type appsSetup struct {
	dir     string // the test's folder
	envFile string
	appsDir string
	dataDir string
}

// newAppsSetup clears the DEPLOY_ environment for the test (these tests
// cannot be parallel) and writes the env file; add apps with app.
func newAppsSetup(t *testing.T) *appsSetup {
	t.Helper()
	clearDeployEnv(t)
	dir := t.TempDir()
	s := &appsSetup{dir: dir, envFile: filepath.Join(dir, "deploy.env"), appsDir: filepath.Join(dir, "apps"), dataDir: filepath.Join(dir, "data")}
	if err := os.Mkdir(s.appsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	s.write(t, known, "")
	s.write(t, s.envFile, strings.Join([]string{
		"DEPLOY_REPO_URL=" + filepath.Join(dir, "repo"),
		"DEPLOY_DATA_DIR=" + s.dataDir,
		"DEPLOY_KNOWN_HOSTS=" + known,
		"DEPLOY_APPS_DIR=" + s.appsDir,
		"DEPLOY_LISTEN=127.0.0.1:0",
	}, "\n")+"\n")
	return s
}

func (s *appsSetup) write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// app writes apps/NAME.env: branch, a hosts file of `local`, a root of its
// own and a webhook secret, then the extra lines.
func (s *appsSetup) app(t *testing.T, name, branch string, extra ...string) string {
	t.Helper()
	hosts := filepath.Join(s.dir, name+"-hosts.txt")
	s.write(t, hosts, "local\n")
	file := filepath.Join(s.appsDir, name+".env")
	lines := append([]string{
		"DEPLOY_BRANCH=" + branch,
		"DEPLOY_HOSTS_FILE=" + hosts,
		"DEPLOY_ROOT=" + filepath.Join(s.dir, "srv", name),
		"DEPLOY_WEBHOOK_SECRET=" + name + "-secret-0123456789abcdef",
	}, extra...)
	s.write(t, file, strings.Join(lines, "\n")+"\n")
	return file
}

// run runs pushdeploy with the setup's env file, returning the exit status
// and what it printed.
func (s *appsSetup) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, append(args, "--env-file", s.envFile), &out, &errOut)
	code = exitCode(err, &errOut)
	return code, out.String(), errOut.String()
}

// TestSeveralAppsNeedApp: with several apps, every command that works on
// one app refuses to guess: exit 2, naming the apps and --app; an --app
// that names no app is a usage error naming the apps too. Nothing is
// deployed or recorded.
func TestSeveralAppsNeedApp(t *testing.T) {
	s := newAppsSetup(t)
	s.app(t, "staging", "main")
	s.app(t, "production", "release")
	for _, args := range [][]string{
		{"deploy"},
		{"deploy", "--dry-run"},
		{"rollback"},
		{"rollback", "--dry-run"},
		{"releases"},
		{"history"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := s.run(t, args...)
			if code != 2 || !strings.Contains(stderr, "there are 2 apps (production, staging): name one with --app NAME") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 naming the apps and --app", code, stderr)
			}
			code, _, stderr = s.run(t, append(args, "--app", "qa")...)
			if code != 2 || !strings.Contains(stderr, "--app qa: no such app in "+s.appsDir+" (apps: production, staging)") {
				t.Errorf("--app qa: exit %d, stderr:\n%s\nwant exit 2 naming the apps", code, stderr)
			}
		})
	}
	if _, err := os.Stat(s.dataDir); !os.IsNotExist(err) {
		t.Errorf("DEPLOY_DATA_DIR was made (%v): a command went on without knowing its app", err)
	}

	// --from and --commit exclude each other, said before anything is read.
	code, _, stderr := s.run(t, "deploy", "--app", "production", "--from", "staging", "--commit", "1a2b3c4")
	if code != 2 || !strings.Contains(stderr, "--commit and --from: give one of them") {
		t.Errorf("--from with --commit: exit %d, stderr:\n%s", code, stderr)
	}
	// A deploy from itself is refused by the gate, naming the flag.
	code, _, stderr = s.run(t, "deploy", "--app", "production", "--from", "production")
	if code != 2 || !strings.Contains(stderr, "--from: production is this app") {
		t.Errorf("--from its own app: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = s.run(t, "deploy", "--app", "production", "--from", "qa")
	if code != 2 || !strings.Contains(stderr, "--from: there is no app qa (apps: production, staging)") {
		t.Errorf("--from an unknown app: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestOneAppWithoutAppsDir: without DEPLOY_APPS_DIR the one app is
// default: --app default is accepted, any other name is a usage error that
// says so.
func TestOneAppWithoutAppsDir(t *testing.T) {
	s := newAppsSetup(t)
	hosts := filepath.Join(s.dir, "hosts.txt")
	s.write(t, hosts, "local\n")
	s.write(t, s.envFile, strings.Join([]string{
		"DEPLOY_REPO_URL=" + filepath.Join(s.dir, "repo"),
		"DEPLOY_DATA_DIR=" + s.dataDir,
		"DEPLOY_KNOWN_HOSTS=" + filepath.Join(s.dir, "known_hosts"),
		"DEPLOY_HOSTS_FILE=" + hosts,
	}, "\n")+"\n")
	code, _, stderr := s.run(t, "releases", "--app", "staging")
	if code != 2 || !strings.Contains(stderr, "--app staging: no such app: without DEPLOY_APPS_DIR the one app is default") {
		t.Errorf("--app staging without DEPLOY_APPS_DIR: exit %d, stderr:\n%s", code, stderr)
	}
	code, stdout, stderr := s.run(t, "history", "--app", "default")
	if code != 0 || !strings.Contains(stdout, "no deployments recorded yet") {
		t.Errorf("history --app default: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	code, stdout, _ = s.run(t, "apps")
	if want := "default  release  1      -             " + s.envFile; code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("apps without DEPLOY_APPS_DIR: exit %d, stdout:\n%s\nwant a line %q", code, stdout, want)
	}
}

// TestAppsCommand: `pushdeploy apps` lists every app, sorted by name, with
// its branch, host count, promotion source and file; --json the same as
// one document.
func TestAppsCommand(t *testing.T) {
	s := newAppsSetup(t)
	staging := s.app(t, "staging", "main")
	production := s.app(t, "production", "release", "DEPLOY_PROMOTE_FROM=staging")
	code, stdout, stderr := s.run(t, "apps")
	if code != 0 {
		t.Fatalf("apps: exit %d\n%s", code, stderr)
	}
	want := "APP         BRANCH   HOSTS  PROMOTE FROM  FILE\n" +
		"production  release  1      staging       " + production + "\n" +
		"staging     main     1      -             " + staging + "\n"
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("apps (-want +got):\n%s", diff)
	}

	code, stdout, stderr = s.run(t, "apps", "--json")
	if code != 0 {
		t.Fatalf("apps --json: exit %d\n%s", code, stderr)
	}
	var got struct{ Apps []appJSON }
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("apps --json: %v\n%s", err, stdout)
	}
	wantJSON := []appJSON{
		{Name: "production", Branch: "release", HostCount: 1, Hosts: []string{"local"}, File: production, PromoteFrom: "staging"},
		{Name: "staging", Branch: "main", HostCount: 1, Hosts: []string{"local"}, File: staging},
	}
	if diff := cmp.Diff(wantJSON, got.Apps); diff != "" {
		t.Errorf("apps --json (-want +got):\n%s", diff)
	}

	// A broken app file: every problem, exit 2, as serve would say.
	s.write(t, staging, "DEPLOY_PARALLEL=zero\n")
	code, _, stderr = s.run(t, "apps")
	if code != 2 || !strings.Contains(stderr, "staging.env:1: DEPLOY_PARALLEL") {
		t.Errorf("apps with a broken file: exit %d, stderr:\n%s\nwant exit 2 naming staging.env:1 and the variable", code, stderr)
	}
}

// TestCheckEveryApp: check without --app checks each app under a heading
// of its own (JSON lines carry "app"); with --app, only that one.
func TestCheckEveryApp(t *testing.T) {
	s := newAppsSetup(t)
	s.app(t, "staging", "main")
	s.app(t, "production", "release")
	_, stdout, stderr := s.run(t, "check")
	for _, want := range []string{
		"app production (" + filepath.Join(s.appsDir, "production.env") + ")\n",
		"app staging (" + filepath.Join(s.appsDir, "staging.env") + ")\n",
		"branch release, root " + filepath.Join(s.dir, "srv", "production"),
		"branch main, root " + filepath.Join(s.dir, "srv", "staging"),
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check: stdout lacks %q:\n%s\nstderr:\n%s", want, stdout, stderr)
		}
	}
	if p, st := strings.Index(stdout, "app production"), strings.Index(stdout, "app staging"); p > st {
		t.Errorf("check: the apps are not in name order:\n%s", stdout)
	}

	_, stdout, _ = s.run(t, "check", "--app", "staging", "--json")
	apps := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("check --json: %q: %v", line, err)
		}
		app, _ := l["app"].(string)
		apps[app] = true
	}
	if diff := cmp.Diff(map[string]bool{"staging": true}, apps); diff != "" {
		t.Errorf("check --app staging --json: the lines' apps (-want +got):\n%s", diff)
	}
}
