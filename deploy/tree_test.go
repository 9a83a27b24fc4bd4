package deploy

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tarOf builds a tar stream: name to content, or to "->target" for a
// symlink; a name ending in "/" is a folder.
func tarOf(t *testing.T, entries map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, content := range entries {
		hdr := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(content))}
		switch {
		case strings.HasSuffix(name, "/"):
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(content, "->"):
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, content[2:], 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCheckTree unpacks hostile trees with unpack.sh (the real sh and
// tar) and checks what is refused, with an error naming the path, and that
// nothing is written outside the release.
func TestCheckTree(t *testing.T) {
	const rel = "20261125183400-1a2b3c4"
	tests := []struct {
		name    string
		entries func(outside string) map[string]string
		want    string // "" accepted
	}{
		{"plain app", func(string) map[string]string {
			return map[string]string{"app.py": "print(1)\n", "requirements.txt": "flask==3.0\n"}
		}, ""},
		{"requirements.txt linked within the repository", func(string) map[string]string {
			return map[string]string{"requirements/": "", "requirements/prod.txt": "flask\n", "requirements.txt": "->requirements/prod.txt"}
		}, ""},
		{"a venv folder deeper down is fine", func(string) map[string]string {
			return map[string]string{"docs/": "", "docs/venv": "notes\n"}
		}, ""},
		{"venv symlink out", func(o string) map[string]string { return map[string]string{"venv": "->" + o} }, "has venv at its top level"},
		{"venv relative symlink out", func(string) map[string]string { return map[string]string{"venv": "->../../../x"} }, "has venv at its top level"},
		{"venv committed", func(string) map[string]string {
			return map[string]string{"venv/": "", "venv/bin/": "", "venv/bin/python": "#!/bin/sh\n"}
		}, "has venv at its top level"},
		{"REVISION symlink out", func(o string) map[string]string { return map[string]string{"REVISION": "->" + o + "/REVISION"} }, "has REVISION at its top level"},
		{"REVISION committed", func(string) map[string]string { return map[string]string{"REVISION": "0000\n"} }, "has REVISION at its top level"},
		{"REVISION.tmp symlink out", func(o string) map[string]string { return map[string]string{"REVISION.tmp": "->" + o + "/x"} }, "has REVISION.tmp at its top level"},
		{"requirements.txt to /etc/passwd", func(string) map[string]string { return map[string]string{"requirements.txt": "->/etc/passwd"} }, "requirements.txt is a symlink to /etc/passwd, outside the release"},
		{"requirements.txt up and out", func(string) map[string]string {
			return map[string]string{"requirements.txt": "->../../shared/requirements.txt"}
		}, "outside the release"},
		{"requirements.txt through a linked folder", func(o string) map[string]string {
			return map[string]string{"req": "->" + o, "requirements.txt": "->req/requirements.txt"}
		}, "outside the release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(outside, "requirements.txt"), []byte("evil\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(root, "releases"), 0o755); err != nil {
				t.Fatal(err)
			}
			var upload bytes.Buffer
			if err := sealUpload(&upload, bytes.NewReader(tarOf(t, tt.entries(outside)))); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/bin/sh", "-c", unpackScript, "sh", root, rel, "")
			cmd.Stdin = &upload
			out, err := cmd.CombinedOutput()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v\n%s", err, out)
				}
			} else if err == nil || !strings.Contains(string(out), tt.want) {
				t.Fatalf("got %v\n%s\nwant a failure saying %q", err, out, tt.want)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 1 {
				t.Errorf("written outside the release: %v", entries)
			}
		})
	}
}

// TestSwitchDoesNotFollowRevisionTmp: a REVISION.tmp symlink in the
// release (put there after the check, by a hook say) is replaced, not
// written through.
func TestSwitchDoesNotFollowRevisionTmp(t *testing.T) {
	const rel, commit = "20261125183400-1a2b3c4", "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	root, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "victim")
	if err := os.WriteFile(target, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "releases", rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "REVISION.tmp")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/bin/sh", "-c", switchScript, "sh", root, "deploy", rel, commit, "dep1", "").CombinedOutput(); err != nil {
		t.Fatalf("switch: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(target); string(got) != "keep\n" {
		t.Errorf("the switch wrote through REVISION.tmp: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "REVISION")); string(got) != commit+"\n" {
		t.Errorf("REVISION %q", got)
	}
}
