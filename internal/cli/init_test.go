package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInit: init writes a starter deploy.env (0600, the example's content)
// and hosts.txt, prints the next steps, and refuses to overwrite either.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"init", "--dir", dir}, &stdout, &stderr), &stderr); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr.String())
	}
	env, err := os.ReadFile(filepath.Join(dir, "deploy.env"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../deploy.env.example")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env, example) {
		t.Error("deploy.env written by init differs from deploy.env.example")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "deploy.env")); fi.Mode().Perm() != 0o600 {
		t.Errorf("deploy.env mode %v, want 0600", fi.Mode().Perm())
	}
	hosts, err := os.ReadFile(filepath.Join(dir, "hosts.txt"))
	if err != nil || !strings.HasPrefix(string(hosts), "# The pool") {
		t.Errorf("hosts.txt: %q %v", hosts, err)
	}
	for _, want := range []string{"wrote " + filepath.Join(dir, "deploy.env"), "pushdeploy check", "docs/getting-started.md"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("init's output lacks %q:\n%s", want, stdout.String())
		}
	}

	// Again: nothing is overwritten, even a file the user edited.
	if err := os.WriteFile(filepath.Join(dir, "hosts.txt"), []byte("web1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "deploy.env")); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := exitCode(run(context.Background(), []string{"init", "--dir", dir}, &stdout, &stderr), &stderr); code != 2 || !strings.Contains(stderr.String(), "hosts.txt exists") {
		t.Errorf("init over an existing hosts.txt: exit %d\n%s", code, stderr.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "hosts.txt")); string(got) != "web1\n" {
		t.Errorf("hosts.txt was changed: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "deploy.env")); !os.IsNotExist(err) {
		t.Errorf("init wrote deploy.env although it refused: %v", err)
	}
}
