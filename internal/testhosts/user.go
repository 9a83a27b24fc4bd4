package testhosts

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// User is a user made for one test, without an sshd: for example the user
// the commands of a local host run as.
type User struct {
	Name     string
	UID, GID int
	// Home is the user's home folder (owned by the user, 0755), in a
	// folder everyone can traverse.
	Home string
}

// NewUser creates a user with its own group for the test, and deletes it
// (after killing its processes) in t.Cleanup. It needs root: otherwise it
// skips the test, or fails it when DEPLOY_TEST_DISALLOW_SKIP is set.
func NewUser(t testing.TB) *User {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "testhosts: creating a user needs root")
	}
	name, err := newPrefix()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its folders are 0700, which the user could not
	// traverse to its home.
	dir, err := os.MkdirTemp("", "pduser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &Host{User: name + "u", Home: filepath.Join(dir, "home")}
	t.Cleanup(func() {
		if err := deleteUser(h); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createUser(ctx, h); err != nil {
		t.Fatal(err)
	}
	return &User{Name: h.User, UID: h.uid, GID: h.gid, Home: h.Home}
}
