package sshrun

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func TestServeGitAgent(t *testing.T) {
	t.Parallel()
	known := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, known, "")
	gitKey := newKey(t, "")
	r, err := New(Config{Key: newKey(t, ""), GitKey: gitKey, KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	gitSigner, err := ssh.ParsePrivateKey(gitKey)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	sock, stop, err := r.ServeGitAgent(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	fi, err := os.Stat(filepath.Dir(sock))
	if err != nil || fi.Mode().Perm() != 0o700 || filepath.Dir(filepath.Dir(sock)) != dir {
		t.Fatalf("socket folder %s: %v, %v; want a 0700 folder in %s", filepath.Dir(sock), fi, err, dir)
	}
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	client := agent.NewClient(nc)

	// The deploy key alone, and it signs.
	keys, err := client.List()
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].Blob, gitSigner.PublicKey().Marshal()) {
		t.Fatalf("List = %v, %v; want the deploy key alone", keys, err)
	}
	sig, err := client.Sign(gitSigner.PublicKey(), []byte("data"))
	if err != nil || gitSigner.PublicKey().Verify([]byte("data"), sig) != nil {
		t.Fatalf("Sign: %v", err)
	}
	// Read-only: nothing can be added or removed through it.
	if err := client.RemoveAll(); err == nil {
		t.Error("RemoveAll through the lent agent succeeded")
	}
	if keys, _ := client.List(); len(keys) != 1 {
		t.Errorf("after RemoveAll: %d keys", len(keys))
	}

	// After stop: no signature over the open connection, no socket, no folder.
	stop()
	if _, err := client.Sign(gitSigner.PublicKey(), []byte("data")); err == nil {
		t.Error("Sign after stop succeeded")
	}
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("socket folder after stop: %v, want it removed", err)
	}
	stop() // twice is fine

	// The context ends it too.
	ctx, cancel := context.WithCancel(context.Background())
	sock, stop, err = r.ServeGitAgent(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !strings.HasPrefix(sock, os.TempDir()) {
		t.Errorf("socket %s not in %s", sock, os.TempDir())
	}
	cancel()
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Dir(sock)); os.IsNotExist(err) {
			break
		}
		if i == 100 {
			t.Fatal("the socket folder stays after ctx ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeGitAgentWithoutDeployKey(t *testing.T) {
	t.Parallel()
	known := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, known, "")
	r, err := New(Config{Key: newKey(t, ""), KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, _, err := r.ServeGitAgent(context.Background(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "DEPLOY_GIT_KEY") {
		t.Errorf("got %v, want an error naming DEPLOY_GIT_KEY", err)
	}
}
