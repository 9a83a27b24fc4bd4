package testhosts

import (
	"context"
	"os"
	"testing"
	"time"
)

// New starts an Env for a test and closes it in t.Cleanup. It skips the
// test under -short or when Check fails, unless DEPLOY_TEST_DISALLOW_SKIP is
// set (as in CI), in which case the test fails instead.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if testing.Short() {
		skip(t, "testhosts: starts sshd processes; skipped under -short")
	}
	if err := Check(); err != nil {
		skip(t, "testhosts: cannot run here: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// skip skips the test, or fails it when DEPLOY_TEST_DISALLOW_SKIP is set.
func skip(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("DEPLOY_TEST_DISALLOW_SKIP") != "" {
		t.Fatal(reason + " (and DEPLOY_TEST_DISALLOW_SKIP forbids skipping)")
	}
	t.Skip(reason)
}
