package testhosts

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// New starts an Env for a test and closes it in t.Cleanup. It skips the
// test under -short or when Check fails, unless DEPLOY_TEST_DISALLOW_SKIP is
// set (as in CI), in which case the test fails instead.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if testing.Short() {
		SkipOrFail(t, "testhosts: starts sshd processes; skipped under -short")
	}
	if err := Check(); err != nil {
		SkipOrFail(t, "testhosts: cannot run here: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := Start(ctx, o)
	if errors.Is(err, ErrPort22) || errors.Is(err, ErrNoNetns) {
		SkipOrFail(t, err.Error())
	}
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

// SkipOrFail skips the test for reason, or fails it when
// DEPLOY_TEST_DISALLOW_SKIP is set (as in CI), so that a machine that lacks
// what a test needs cannot pass the suite by skipping it.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("DEPLOY_TEST_DISALLOW_SKIP") != "" {
		t.Fatal(reason + " (and DEPLOY_TEST_DISALLOW_SKIP forbids skipping)")
	}
	t.Skip(reason)
}

// NeedTools skips the test (or fails it, see SkipOrFail) unless every one
// of the named programs is on PATH.
func NeedTools(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			SkipOrFail(t, name+" is not installed")
		}
	}
}

// Glob1 is the one path matching pattern; the test fails unless exactly
// one does.
func Glob1(t testing.TB, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %v, want 1 match", pattern, m)
	}
	return m[0]
}
