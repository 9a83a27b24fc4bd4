package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// gitArchiver ships a commit of a local repository with git archive, as
// gitsrc does from the deployer's mirror.
type gitArchiver struct{ repo string }

func (a gitArchiver) Archive(ctx context.Context, commit string, w io.Writer) error {
	cmd := exec.CommandContext(ctx, "git", "-C", a.repo, "archive", "--format=tar", commit)
	cmd.Stdout = w
	return cmd.Run()
}

// cutArchiver writes the first entries of an archive, then fails between
// two entries: what gitsrc did with an oversized symlink target.
type cutArchiver struct {
	prefix []byte // whole entries
	err    error
}

func (a cutArchiver) Archive(_ context.Context, _ string, w io.Writer) error {
	if _, err := w.Write(a.prefix); err != nil {
		return err
	}
	return a.err
}

// TestUploadCutPartWayChangesNothing: an upload whose Archiver fails
// part-way fails the deploy at upload, with the Archiver's reason, and
// leaves every host as it was. shellConn drops the error of a command's
// input, as the runners once did, so this also shows the host's own check
// (unpack.sh's marker) refusing the cut stream.
func TestUploadCutPartWayChangesNothing(t *testing.T) {
	r := newRig(t, 2)
	r.commit("flask")
	r.d.Archiver = gitArchiver{repo: r.repo}
	first, err := r.deploy()
	if err != nil {
		t.Fatalf("a whole upload: %v", err)
	}
	if rel := filepath.Join(r.dialer.homes["web1"], "app", "current", uploadMarker); fileExists(rel) {
		t.Errorf("the upload marker stayed in the release: %s", rel)
	}
	r.commit("flask")
	boom := errors.New("read symlink a: target of 70000 bytes is longer than 4096")
	r.d.Archiver = cutArchiver{prefix: testhosts.TarPrefix(t, "LICENSE", "README"), err: boom}
	_, err = r.deploy()
	var se *StepError
	if !errors.As(err, &se) || se.Host != "web1" || se.Step != "upload" || !errors.Is(err, boom) {
		t.Fatalf("got %v, want web1's upload failing with %v", err, boom)
	}
	for _, h := range r.hosts {
		if got, want := r.current(h.Name), "releases/"+first.ReleaseName; got != want {
			t.Errorf("%s: current -> %q, want %q", h.Name, got, want)
		}
		if got := r.releases(h.Name); !slices.Equal(got, []string{first.ReleaseName}) {
			t.Errorf("%s: releases %v, want only %s", h.Name, got, first.ReleaseName)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// unpack runs unpack.sh in push mode with stdin, as the upload step does.
func unpack(t *testing.T, stdin []byte) (root string, out string, err error) {
	t.Helper()
	root = t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "releases"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", unpackScript, "sh", root, "20261125183400-1a2b3c4", "")
	cmd.Stdin = bytes.NewReader(stdin)
	b, err := cmd.CombinedOutput()
	return root, string(b), err
}

// TestUnpackNeedsTheWholeUpload: the host refuses an upload without its end
// marker (a stream cut between two entries, which tar takes whole), or
// whose marker counts other paths than arrived; it takes a sealed one and
// removes the marker.
func TestUnpackNeedsTheWholeUpload(t *testing.T) {
	cut := testhosts.TarPrefix(t, "app.py", "lib.py")
	if _, out, err := unpack(t, cut); err == nil || !strings.Contains(out, "the upload ended before the last of its files") {
		t.Errorf("a cut stream: got %v\n%s", err, out)
	}

	var sealed bytes.Buffer
	if err := sealUpload(&sealed, bytes.NewReader(tarOf(t, map[string]string{"app.py": "x\n", "lib/x.py": "y\n", "link": "->app.py"}))); err != nil {
		t.Fatal(err)
	}
	root, out, err := unpack(t, sealed.Bytes())
	if err != nil {
		t.Fatalf("a sealed stream: %v\n%s", err, out)
	}
	if fileExists(filepath.Join(root, "releases", "20261125183400-1a2b3c4", uploadMarker)) {
		t.Error("the marker stayed in the release")
	}

	// A marker that counts one path more than the stream holds.
	var wrong bytes.Buffer
	tw := tar.NewWriter(&wrong)
	for _, e := range []struct{ name, body string }{{"app.py", "x\n"}, {uploadMarker, "2\n"}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, out, err := unpack(t, wrong.Bytes()); err == nil || !strings.Contains(out, "the upload is incomplete: 1 of its 2") {
		t.Errorf("a marker counting more: got %v\n%s", err, out)
	}
}

// TestSealUpload: the marker counts every path the stream makes (folders
// only implied by a file's name too), and entries the host could not count
// or that would clash with the marker are refused.
func TestSealUpload(t *testing.T) {
	var b bytes.Buffer
	if err := sealUpload(&b, bytes.NewReader(tarOf(t, map[string]string{"a/b/c.txt": "1\n", "a/d.txt": "2\n", "e": "->a"}))); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&b)
	var names []string
	var count string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == uploadMarker {
			body, _ := io.ReadAll(tr)
			count = string(body)
		}
	}
	if names[len(names)-1] != uploadMarker || count != "5\n" { // a, a/b, a/b/c.txt, a/d.txt, e
		t.Errorf("entries %v, marker %q; want the marker last, saying 5", names, count)
	}

	for _, tt := range []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"the marker's name", tar.Header{Typeflag: tar.TypeReg, Name: uploadMarker}, "the repository has .pushdeploy-upload at its top level"},
		{"absolute", tar.Header{Typeflag: tar.TypeReg, Name: "/etc/passwd"}, "not a clean relative path"},
		{"up and out", tar.Header{Typeflag: tar.TypeReg, Name: "../x"}, "not a clean relative path"},
		{"not clean", tar.Header{Typeflag: tar.TypeReg, Name: "a//b"}, "not a clean relative path"},
		{"a device", tar.Header{Typeflag: tar.TypeChar, Name: "tty"}, "files, folders and symlinks only"},
		{"a hard link", tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "a"}, "files, folders and symlinks only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var in bytes.Buffer
			tw := tar.NewWriter(&in)
			hdr := tt.hdr
			hdr.Mode = 0o644
			if err := tw.WriteHeader(&hdr); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			err := sealUpload(io.Discard, &in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
