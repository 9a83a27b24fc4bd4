// Command demo shows pushdeploy at work on this machine: it brings up two
// loopback test hosts (real sshd, each with its own user) and a git server
// reached over SSH with a read-only deploy key, using the same helper as
// the end-to-end tests, then deploys a small Python WSGI app to them twice
// and prints each host's `current`.
//
// It needs root (it creates users and starts sshd) and Debian's
// openssh-server, git and python3-venv: run .ci/install first.
//
//	go run ./demo          run, print, tear everything down
//	go run ./demo -keep    leave the hosts up until Ctrl-C, to try commands
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

func main() {
	keep := flag.Bool("keep", false, "keep the test hosts running until Ctrl-C")
	hosts := flag.Int("hosts", 2, "number of test hosts")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *hosts, *keep)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, keep bool) error {
	if err := testhosts.Check(); err != nil {
		return fmt.Errorf("this machine cannot run the demo (run .ci/install as root first): %w", err)
	}
	step("building pushdeploy")
	bin := filepath.Join(os.TempDir(), "pushdeploy-demo")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pushdeploy/pushdeploy").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	step(fmt.Sprintf("starting %d test hosts and a git server on loopback addresses", n))
	env, err := testhosts.Start(ctx, testhosts.Options{Hosts: n})
	if err != nil {
		return err
	}
	defer func() {
		step("tearing down the test hosts")
		if err := env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: close:", err)
		}
	}()
	for _, h := range env.Hosts {
		// The hosts trust the git server only through the key pushdeploy
		// verified and hands them.
		_ = os.Remove(h.Path(".ssh/known_hosts"))
	}

	envFile := filepath.Join(env.Dir, "deploy.env")
	vars := map[string]string{
		"DEPLOY_REPO_URL":    env.RepoURL,
		"DEPLOY_HOSTS_FILE":  env.HostsFile,
		"DEPLOY_ROOT":        "app",
		"DEPLOY_SSH_KEY":     env.AdminKey,
		"DEPLOY_KNOWN_HOSTS": env.KnownHosts,
		"DEPLOY_GIT_KEY":     env.GitKey,
		"DEPLOY_DATA_DIR":    filepath.Join(env.Dir, "data"),
		"DEPLOY_RESTART_CMD": `echo "restarted $COMMIT with $APP_PROCESSES processes" >> "$HOME/restarts.log"`,
	}
	if err := writeEnvFile(envFile, vars); err != nil {
		return err
	}
	pushdeploy := func(args ...string) error {
		fmt.Printf("\n$ pushdeploy %s --env-file %s\n", strings.Join(args, " "), envFile)
		cmd := exec.CommandContext(ctx, bin, append(args, "--env-file", envFile)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = cleanEnv()
		return cmd.Run()
	}

	if _, err := env.Commit(ctx, env.AppFiles("1.0"), "first version"); err != nil {
		return err
	}
	if err := pushdeploy("check"); err != nil {
		return err
	}
	if err := pushdeploy("deploy"); err != nil {
		return err
	}
	files := env.AppFiles("1.0")
	files["app.py"] += "\n# a one-line code change\n"
	if _, err := env.Commit(ctx, files, "a code change"); err != nil {
		return err
	}
	if err := pushdeploy("deploy"); err != nil {
		return err
	}

	step("each host's current")
	for _, h := range env.Hosts {
		target, err := os.Readlink(h.Path("app/current"))
		if err != nil {
			return err
		}
		rev, _ := os.ReadFile(h.Path("app/current/REVISION"))
		entries, _ := os.ReadDir(h.Path("app/releases"))
		var rels []string
		for _, e := range entries {
			rels = append(rels, e.Name())
		}
		sort.Strings(rels)
		fmt.Printf("%s\n  %s -> %s (commit %s)\n  releases: %s\n",
			h.Name, h.Path("app/current"), target, strings.TrimSpace(string(rev))[:12], strings.Join(rels, ", "))
	}
	if keep {
		step("the hosts stay up until Ctrl-C; try: " + bin + " check --env-file " + envFile)
		<-ctx.Done()
	}
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

func writeEnvFile(path string, vars map[string]string) error {
	var b strings.Builder
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := vars[k]
		b.WriteString(k + "=" + quoteEnv(v) + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// quoteEnv writes v for a dotenv file: single quotes keep $ and " literal.
func quoteEnv(v string) string {
	if !strings.ContainsAny(v, " $\"'#") {
		return v
	}
	if strings.Contains(v, "'") {
		panic(errors.New("demo: value with a single quote"))
	}
	return "'" + v + "'"
}

// cleanEnv drops DEPLOY_ variables of the caller's shell, so the demo's
// env file is what counts.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPLOY_") {
			out = append(out, kv)
		}
	}
	return out
}
