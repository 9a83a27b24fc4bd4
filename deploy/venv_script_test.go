package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVenvScriptIdentity runs venv.sh itself: the Python's identity that
// phase.sh asked for before the lock gives the same key as venv.sh asking
// itself (venvs built by either are reused by the other), and without
// either the step fails naming the Python.
func TestVenvScriptIdentity(t *testing.T) {
	const (
		identity = "3.12.7 (main, Oct  1 2026, 10:00:00) [GCC 12.2.0]\n/opt/python/bin/python3.12\nlinux"
		reqs     = "flask==3.0.0\n"
	)
	// A Python that answers the identity question, and one that does not run.
	dir := t.TempDir()
	answering := filepath.Join(dir, "answering-python")
	if err := os.WriteFile(answering, []byte("#!/bin/sh\nprintf '%s\\n' '"+strings.ReplaceAll(identity, "\n", "' '")+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// phase.sh asks the identity of venv.sh itself, before the lock.
	if out, err := exec.Command("sh", script(venvScript, "--identity", answering)[1:]...).Output(); err != nil || string(out) != identity+"\n" {
		t.Fatalf("venv.sh --identity: %q, %v; want %q", out, err, identity+"\n")
	}
	sum := sha256.Sum256([]byte(identity + "\n\n" + reqs))
	key := hex.EncodeToString(sum[:])[:16]
	for _, tc := range []struct {
		name   string
		python string
		idfile *string // content; nil: not given
		status int
		output string
		reused bool
	}{
		{name: "identity from phase.sh, python not run again", python: "false", idfile: new(identity + "\n"), reused: true},
		{name: "identity asked here", python: answering, reused: true},
		{name: "an empty identity file: asked here", python: answering, idfile: new(""), reused: true},
		{name: "a python that does not run", python: "false", idfile: new(""), status: 1, output: "python interpreter false (DEPLOY_PYTHON) does not run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			rel := filepath.Join(root, "releases", "20261203120000-abcdef0")
			complete := filepath.Join(root, "venvs", key, ".pushdeploy-complete")
			for _, d := range []string{rel, filepath.Dir(complete)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(complete, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rel, "requirements.txt"), []byte(reqs), 0o644); err != nil {
				t.Fatal(err)
			}
			answer := filepath.Join(root, "answer")
			args := []string{root, tc.python, "yes", "", answer}
			if tc.idfile != nil {
				idfile := filepath.Join(root, "pyid")
				if err := os.WriteFile(idfile, []byte(*tc.idfile), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, idfile)
			}
			cmd := exec.Command("sh", script(venvScript, args...)[1:]...)
			cmd.Dir = rel
			out, err := cmd.CombinedOutput()
			if status := cmd.ProcessState.ExitCode(); status != tc.status {
				t.Fatalf("exit status %d (%v), want %d; output:\n%s", status, err, tc.status, out)
			}
			if !strings.Contains(string(out), tc.output) {
				t.Errorf("output %q does not contain %q", out, tc.output)
			}
			link, _ := os.Readlink(filepath.Join(rel, "venv"))
			if got, want := link == "../../venvs/"+key, tc.reused; got != want {
				t.Errorf("venv link %q: reused %v, want %v; output:\n%s", link, got, want, out)
			}
			if tc.reused {
				b, _ := os.ReadFile(answer)
				if want := "reuse " + filepath.Join(root, "venvs", key) + "\n"; string(b) != want {
					t.Errorf("answer %q, want %q", b, want)
				}
			}
		})
	}
}
