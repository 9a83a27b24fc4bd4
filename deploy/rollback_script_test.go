package deploy

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRollbackScriptWords runs rollback.sh itself: it does nothing until
// a word names a valid target, refuses a word it cannot trust, and gives
// the restart the release's folder and environment.
func TestRollbackScriptWords(t *testing.T) {
	const (
		name   = "20261201120000-abcdef0"
		commit = "abcdef0123456789abcdef0123456789abcdef01"
	)
	// The restart records its folder and environment, and whether the
	// active file was held (shared) while it ran.
	restart := `pwd -P > restart.pwd; env > restart.env; if flock -n -x "$RELEASE_DIR/../../.pushdeploy.active" true; then echo free; else echo held; fi > restart.active`
	for _, tc := range []struct {
		name      string
		input     string
		status    int
		output    string // in the script's output
		switched  bool
		restarted bool
		commit    string // COMMIT of the restart
	}{
		{name: "no word", input: ""},
		{name: "an unknown word", input: "hello\n"},
		{name: "a name that climbs out", input: "go ../../etc\n", status: 2, output: "bad release name"},
		{name: "a name with a glob", input: "go 2026*\n", status: 2, output: "bad release name"},
		{name: "a bad commit", input: "go " + name + " $(id)\n", status: 2, output: "bad commit"},
		{name: "too many fields", input: "go " + name + " " + commit + " x\n", status: 2, output: "too many fields"},
		{name: "go", input: "go " + name + " " + commit + "\n", switched: true, restarted: true, commit: commit},
		{name: "go without a commit: the release's REVISION", input: "go " + name + "\n", switched: true, restarted: true, commit: "1234567890123456789012345678901234567890"},
		{name: "switch, then the input ends", input: "switch " + name + " " + commit + "\n", switched: true},
		{name: "switch, then another word", input: "switch " + name + " " + commit + "\nstop\n", switched: true},
		{name: "switch, then restart", input: "switch " + name + " " + commit + "\nrestart\n", switched: true, restarted: true, commit: commit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			rel := filepath.Join(root, "releases", name)
			old := filepath.Join(root, "releases", "20261130120000-1111111")
			for _, d := range []string{filepath.Join(rel, "venv"), filepath.Join(old, "venv")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(rel, "REVISION"), []byte("1234567890123456789012345678901234567890\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("releases/20261130120000-1111111", filepath.Join(root, "current")); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", script(rollbackScript, "30", restart, switchScript, root, switchRollback, "dep-1", activeFile)[1:]...)
			cmd.Stdin = strings.NewReader(tc.input)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			status := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status || !strings.Contains(out.String(), tc.output) {
				t.Errorf("status %d, output %q; want %d and %q", status, out.String(), tc.status, tc.output)
			}
			cur, _ := os.Readlink(filepath.Join(root, "current"))
			if got := cur == "releases/"+name; got != tc.switched {
				t.Errorf("current -> %q; switched %v, want %v", cur, got, tc.switched)
			}
			env, err := os.ReadFile(filepath.Join(rel, "restart.env"))
			if restarted := err == nil; restarted != tc.restarted {
				t.Fatalf("restarted %v, want %v (output %q)", restarted, tc.restarted, out.String())
			}
			if !tc.restarted {
				return
			}
			real, _ := filepath.EvalSymlinks(root)
			for _, kv := range []string{"COMMIT=" + tc.commit, "RELEASE_DIR=" + real + "/releases/" + name, "CURRENT_DIR=" + real + "/current"} {
				if !strings.Contains("\n"+string(env), "\n"+kv+"\n") {
					t.Errorf("restart env lacks %s:\n%s", kv, env)
				}
			}
			if pwd := readFile(t, filepath.Join(rel, "restart.pwd")); pwd != real+"/releases/"+name+"\n" {
				t.Errorf("restart ran in %q", pwd)
			}
			if held := readFile(t, filepath.Join(rel, "restart.active")); held != "held\n" {
				t.Errorf("the active file was %q during the restart, want held", held)
			}
		})
	}
}

// TestRollbackScriptHoldsNothingWhileWaiting: rollback.sh starts before
// the host's lock command has checked that no earlier command holds the
// active file, so while it waits for its word it must not hold it.
func TestRollbackScriptHoldsNothingWhileWaiting(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command("sh", script(rollbackScript, "30", "true", switchScript, root, switchRollback, "dep-1", activeFile)[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Dir = root
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The lock command's own check, while the script waits.
	check := exec.Command("flock", "-w", "5", filepath.Join(root, activeFile), "true")
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("the active file is held while rollback.sh waits: %v %s", err, out)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("rollback.sh at the end of its input: %v", err)
	}
}
