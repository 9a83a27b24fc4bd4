package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
)

// TestSelectedHosts: --hosts selects with deploy.SelectHosts, and a host
// not in the pool is a usage error (exit 2) naming the flag.
func TestSelectedHosts(t *testing.T) {
	cfg := &config.Config{Hosts: []deploy.Host{
		{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
		{Name: "web3", User: "deploy", Addr: "web3", Port: 22},
	}}
	c := &common{hosts: "web3,web1"}
	got, err := c.selectedHosts(cfg)
	if err != nil || len(got) != 2 || got[0].Name != "web1" || got[1].Name != "web3" {
		t.Errorf("--hosts web3,web1: got %v, %v; want web1, web3", got, err)
	}
	c.hosts = "web9"
	_, err = c.selectedHosts(cfg)
	var ue *usageError
	if want := `--hosts: "web9" is not in the hosts file; its hosts are web1, web3`; !errors.As(err, &ue) || err.Error() != want {
		t.Errorf("--hosts web9: got %v, want usage error %q", err, want)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usagef("bad flag"), 2},
		{fmt.Errorf("load: %w", &config.Error{Problems: []string{"DEPLOY_X: bad"}}), 2},
		{fmt.Errorf("deploy failed: resolve: %w", &deploy.CommitError{Commit: "abc", Branch: "release"}), 2},
		{&deploy.StepError{Host: "web1", Step: "pip", Err: errors.New("exit status 1")}, 1},
		{errReported, 1},
		{errors.New("anything else"), 1},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if got := exitCode(tt.err, &stderr); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestRunUsage: help goes to stdout with exit 0; a mistake on the command
// line prints its error once and a one-line hint, exit 2.
func TestRunUsage(t *testing.T) {
	tests := []struct {
		args       []string
		want       int
		stdout     string // stdout holds this
		stderr     string // stderr holds this
		stderrOnly bool   // and nothing goes to stdout
	}{
		{nil, 2, "", "no command given", true},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`, true},
		{[]string{"deplyo"}, 2, "", "did you mean deploy?", true},
		{[]string{"deploy", "--nope"}, 2, "", "unknown flag: --nope\nRun 'pushdeploy deploy --help' for usage.\n", true},
		{[]string{"deploy", "extra"}, 2, "", `deploy: unexpected argument "extra"`, true},
		{[]string{"deploy", "--commit", "$(touch /tmp/x)"}, 2, "", "--commit:", true},
		{[]string{"serve", "--grace", "5"}, 2, "", `"5" needs a unit`, true},
		{[]string{"serve", "--grace", "soon"}, 2, "", `"soon" is not a duration`, true},
		{[]string{"version"}, 0, "pushdeploy ", "", false},
		{[]string{"--version"}, 0, "pushdeploy ", "", false},
		{[]string{"help"}, 0, "Available Commands:", "", false},
		{[]string{"help", "deploy"}, 0, "--commit SHA", "", false},
		{[]string{"deploy", "--help"}, 0, "Examples:\n  pushdeploy deploy\n", "", false},
		{[]string{"rollback", "-h"}, 0, "--to RELEASE", "", false},
		{[]string{"completion", "bash"}, 0, "bash completion", "", false},
		{[]string{"completion", "zsh"}, 0, "#compdef pushdeploy", "", false},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		got := exitCode(run(context.Background(), tt.args, &stdout, &stderr), &stderr)
		if got != tt.want {
			t.Errorf("run(%q) exit %d, want %d\n%s", tt.args, got, tt.want, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("run(%q): stdout %q, stderr %q; want them to hold %q and %q", tt.args, trim(stdout.String()), stderr.String(), tt.stdout, tt.stderr)
		}
		if tt.stderrOnly && stdout.Len() > 0 {
			t.Errorf("run(%q) wrote to stdout: %q", tt.args, trim(stdout.String()))
		}
		if n := strings.Count(stderr.String(), "pushdeploy: "); tt.want == 2 && n != 1 {
			t.Errorf("run(%q): the error is printed %d times:\n%s", tt.args, n, stderr.String())
		}
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func TestProgressHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newProgressHandler(&buf)).With("deployment", "d1")
	hl := log.With("host", "web1")
	hl.Info("step done", "step", "clone", "duration", 440*time.Millisecond)
	hl.Error("step failed", "step", "pip", "duration", 1200*time.Millisecond, "error", "exit status 1", "output", "ERROR: no pdtestdep\nbye")
	hl.Info("step done", "step", "before-switch", "duration", 2*time.Second, "output", "Applying app.0002_note... OK\n")
	got := buf.String()
	for _, want := range []string{
		"web1                 clone         0.44s\n",
		"web1                 pip           FAILED after 1.20s: exit status 1\n",
		"    | ERROR: no pdtestdep\n    | bye\n",
		"web1                 before-switch 2.00s\n    | Applying app.0002_note... OK\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("progress output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "deployment=d1") {
		t.Errorf("step lines repeat the deployment id:\n%s", got)
	}
}

// TestErrorsAsJSON: with --json the final error is a JSON line too, so
// every line --json writes to stderr parses; without, it is plain text.
func TestErrorsAsJSON(t *testing.T) {
	fail := errors.New("deploy failed: host web2: pip: exit status 1\n    | ERROR: no pdtestdep")
	for _, tt := range []struct {
		args []string
		json bool
	}{
		{[]string{"deploy", "--json"}, true},
		{[]string{"rollback", "--json", "--to", "x"}, true},
		{[]string{"rollback", "-json", "--to", "x"}, false}, // not a flag: one dash is for shorthands
		{[]string{"deploy", "--json=true"}, true},
		{[]string{"deploy"}, false},
		{[]string{"deploy", "--json=false"}, false},
		{[]string{"deploy", "--", "--json"}, false},
	} {
		var stderr bytes.Buffer
		if code := exitCode(fail, errorWriter(tt.args, &stderr)); code != 1 {
			t.Errorf("%v: exit %d, want 1", tt.args, code)
		}
		var rec struct{ Level, Msg, Error string }
		err := json.Unmarshal(stderr.Bytes(), &rec)
		switch {
		case tt.json && (err != nil || rec.Level != "ERROR" || rec.Error != fail.Error() || strings.Count(stderr.String(), "\n") != 1):
			t.Errorf("%v: stderr %q, want one JSON line carrying the error (%v)", tt.args, stderr.String(), err)
		case !tt.json && stderr.String() != "pushdeploy: "+fail.Error()+"\n":
			t.Errorf("%v: stderr %q, want the plain message", tt.args, stderr.String())
		}
	}
}

// TestWarningsWithErrors: a warning (a key file others can read) is
// printed even when the configuration has errors, beside them.
func TestWarningsWithErrors(t *testing.T) {
	clearDeployEnv(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_admin")
	if err := os.WriteFile(key, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEPLOY_SSH_KEY", key)
	t.Setenv("DEPLOY_DATA_DIR", dir)
	env := filepath.Join(dir, "deploy.env")
	if err := os.WriteFile(env, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := exitCode(run(context.Background(), []string{"check", "--env-file", env}, &stdout, &stderr), &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "other users can read "+key) || !strings.Contains(stderr.String(), "DEPLOY_REPO_URL") {
		t.Errorf("check: exit %d, want 2 with the warning and the errors:\n%s", code, stderr.String())
	}
}
