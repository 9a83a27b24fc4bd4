package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built pushdeploy in an empty folder with only env
// (and PATH, HOME) in its environment.
func runBinary(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBadConfigurationExit2 runs the binary with unknown DEPLOY_ variables
// and malformed values, from the environment and from an env file: exit
// 2, every problem named, nothing else attempted.
func TestBadConfigurationExit2(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(envFile, []byte("DEPLOY_REPO_URL=git@example.com:a/b.git\nDEPLOY_KEEP_RELEASES=many\nDEPLOY_"+"ROOOT=/srv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenFile := filepath.Join(t.TempDir(), "broken.env")
	if err := os.WriteFile(brokenFile, []byte("DEPLOY_BRANCH=main\nDEPLOY_WEBHOOK_SECRET='s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"unknown variable and a malformed number", map[string]string{"DEPLOY_" + "BRANCHH": "x", "DEPLOY_PARALLEL": "abc"}, []string{"check"},
			[]string{"DEPLOY_" + "BRANCHH is not a pushdeploy variable; did you mean DEPLOY_BRANCH?", `DEPLOY_PARALLEL: "abc" is not a whole number`}},
		{"malformed duration and boolean", map[string]string{"DEPLOY_STEP_TIMEOUT": "10", "DEPLOY_VENV_REUSE": "maybe"}, []string{"deploy"},
			[]string{`DEPLOY_STEP_TIMEOUT: "10" is not a duration`, `DEPLOY_VENV_REUSE: "maybe" is not true or false`}},
		{"values out of range", map[string]string{"DEPLOY_REPO_URL": "git@example.com:team/app.git", "DEPLOY_PARALLEL": "0", "DEPLOY_FETCH": "pull", "DEPLOY_ROLLBACK_ON_FAILURE": "none"}, []string{"releases"},
			[]string{"DEPLOY_PARALLEL: 0 is less than 1", `DEPLOY_FETCH: "pull" is neither clone nor push`, `DEPLOY_ROLLBACK_ON_FAILURE: "none"`}},
		{"from an env file, with its lines", nil, []string{"check", "--env-file", envFile},
			[]string{envFile + ":3: DEPLOY_" + "ROOOT is not a pushdeploy variable; did you mean DEPLOY_ROOT?", `DEPLOY_KEEP_RELEASES: "many" is not a whole number`}},
		{"an env file that does not parse", nil, []string{"deploy", "--env-file", brokenFile},
			[]string{brokenFile + ":2: unterminated quoted value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, tt.env, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\n%s", r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("stderr quotes a secret from the env file:\n%s", r.stderr)
			}
		})
	}
}

// hostileNames are branch, commit and release names with shell
// metacharacters, "..", newlines, NUL bytes and leading dashes.
var hostileNames = []string{
	"$(touch {M})", "`touch {M}`", "x;touch {M}", "x|touch {M}", "x&&touch {M}", "x\ntouch {M}", "x\rtouch {M}",
	"../release", "release/../../x", "..", "-release", "--upload-pack=touch {M}", "x y", "'", `"`, "x\\y", "*", "x\ty",
	"rel\x00ease",
}

// TestHostileNamesAreRefused feeds hostileNames to every command-line
// entry point: DEPLOY_BRANCH, deploy --commit, rollback --to and rollback's
// argument. Each is refused with exit 2, naming the variable or flag, and
// nothing runs (the marker file never appears).
func TestHostileNamesAreRefused(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, raw := range hostileNames {
		name := strings.ReplaceAll(raw, "{M}", marker)
		cases := []struct {
			entry string
			env   map[string]string
			args  []string
			want  string
		}{
			{"DEPLOY_BRANCH", map[string]string{"DEPLOY_BRANCH": name, "DEPLOY_REPO_URL": "git@example.com:team/app.git"}, []string{"check"}, "DEPLOY_BRANCH: "},
			{"deploy --commit", nil, []string{"deploy", "--commit", name}, "--commit: "},
			{"rollback --to", nil, []string{"rollback", "--to", name}, "--to: "},
			{"rollback RELEASE", nil, []string{"rollback", "--", name}, "unexpected argument"},
		}
		for _, c := range cases {
			if strings.ContainsRune(name, 0) {
				// No process can receive a NUL in an argument or variable:
				// exec refuses before pushdeploy runs (the env file, the
				// API and webhooks are where a NUL can arrive; their own
				// tests cover it).
				continue
			}
			t.Run(c.entry+" "+strings.ReplaceAll(raw, "\n", `\n`), func(t *testing.T) {
				r := runBinary(t, c.env, c.args...)
				if r.code != 2 || !strings.Contains(r.stderr, c.want) {
					t.Errorf("exit %d, want 2 naming %q\n%s", r.code, c.want, r.stderr)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Fatal("a hostile name ran a command")
				}
			})
		}
	}
}
