// Command demo shows pushdeploy at work on this machine: it brings up two
// loopback test hosts (real sshd, each with its own user) and a git server
// reached over SSH with a read-only deploy key, using the same helper as
// the end-to-end tests. It checks them and deploys a small Python WSGI app
// with the command line; then it starts `pushdeploy serve`, pushes a new
// commit to the release branch, sends the signed Bitbucket Cloud webhook
// the forge would send, follows the deployment it triggered per host and
// step, and prints each host's `current`.
//
// It needs root (it creates users and starts sshd) and Debian's
// openssh-server, git and python3-venv: run .ci/install first.
//
//	go run ./demo                  run, print, tear everything down
//	go run ./demo --keep           leave serve and the hosts up until Ctrl-C:
//	                               the status page's address and token are printed
//	go run ./demo --screenshots D  also roll back, and save the status page
//	                               (D/status-page.png, D/status-page-deployment.png)
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
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// options are the demo's flags.
type options struct {
	hosts       int
	keep        bool
	screenshots string // folder for the status page's pictures; "" for none
}

func main() {
	var o options
	flag.BoolVar(&o.keep, "keep", false, "keep serve and the test hosts running until Ctrl-C")
	flag.IntVar(&o.hosts, "hosts", 2, "number of test hosts")
	flag.StringVar(&o.screenshots, "screenshots", "", "also roll back, and save screenshots of the status page into this folder (needs /usr/bin/chromium)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo done in %.0fs\n", time.Since(start).Seconds())
}

func run(ctx context.Context, o options) (err error) {
	if err := testhosts.Check(); err != nil {
		return fmt.Errorf("this machine cannot run the demo (run .ci/install as root first): %w", err)
	}
	if o.screenshots != "" {
		if err := canScreenshot(o.screenshots); err != nil {
			return err
		}
	}
	// The demo's own files (the binary, serve's log) live here; the test
	// hosts make and remove their own folder.
	tmp, err := os.MkdirTemp("", "pushdeploy-demo-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()

	step("building pushdeploy")
	bin := filepath.Join(tmp, "pushdeploy")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pushdeploy/pushdeploy").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	step(fmt.Sprintf("starting %d test hosts and a git server on loopback addresses", o.hosts))
	env, err := testhosts.Start(ctx, testhosts.Options{Hosts: o.hosts})
	if err != nil {
		return err
	}
	defer func() {
		step("tearing down the test hosts: their sshd, users and folders")
		err = errors.Join(err, env.Close())
	}()
	for _, h := range env.Hosts {
		// The hosts trust the git server only through the key pushdeploy
		// verified and hands them.
		_ = os.Remove(h.Path(".ssh/known_hosts"))
	}
	envFile, err := writeDeployEnv(env)
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, bin: bin, env: env, envFile: envFile, tmp: tmp, opts: o}
	return d.run()
}

// demo is one run of the demo, once the test hosts are up.
type demo struct {
	ctx     context.Context
	bin     string // the pushdeploy binary
	env     *testhosts.Env
	envFile string // deploy.env of the CLI and of serve
	tmp     string
	opts    options
}

func (d *demo) run() (err error) {
	first, err := d.env.Commit(d.ctx, d.env.AppFiles("1.0"), "first version")
	if err != nil {
		return err
	}
	if err := d.cli("check"); err != nil {
		return err
	}
	if err := d.cli("deploy"); err != nil {
		return err
	}

	s, err := startServe(d.ctx, d.bin, d.envFile, d.tmp, d.opts.screenshots != "")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.stop()) }()

	step("a push to the release branch: a new commit, and the webhook Bitbucket Cloud would send")
	files := d.env.AppFiles("1.0")
	files["app.py"] += "\n# a one-line code change\n"
	sha, err := d.env.Commit(d.ctx, files, "a code change")
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s to release\n", sha[:12])
	id, err := s.webhook(d.ctx, sha)
	if err != nil {
		return err
	}
	if err := s.follow(d.ctx, id); err != nil {
		return err
	}
	want := sha
	if d.opts.screenshots != "" {
		if err := d.screenshots(s, id); err != nil {
			return err
		}
		want = first // rolled back
	}
	if err := d.printCurrent(want); err != nil {
		return err
	}
	if d.opts.keep {
		s.printKeep(d.bin, d.envFile)
		<-d.ctx.Done()
		fmt.Println()
	}
	return nil
}

// screenshots rolls back through the API, so that the list has more than
// deploys, and saves the index and the webhook deployment's page.
func (d *demo) screenshots(s *server, webhookID string) error {
	step("a rollback through the API")
	id, err := s.rollback(d.ctx)
	if err != nil {
		return err
	}
	if err := s.follow(d.ctx, id); err != nil {
		return err
	}
	step("screenshots of the status page")
	return screenshot(d.ctx, d.tmp, d.opts.screenshots, s.url, webhookID)
}

// cli runs the pushdeploy command line with the demo's env file, its output
// shown as it comes.
func (d *demo) cli(args ...string) error {
	fmt.Printf("\n$ pushdeploy %s --env-file %s\n", strings.Join(args, " "), d.envFile)
	cmd := exec.CommandContext(d.ctx, d.bin, append(args, "--env-file", d.envFile)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = testhosts.CommandEnv()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pushdeploy %s: %w", args[0], err)
	}
	return nil
}

// printCurrent shows where each host's current points, read from the
// host's folder, and checks that it is commit want.
func (d *demo) printCurrent(want string) error {
	step("each host's current")
	for _, h := range d.env.Hosts {
		target, err := os.Readlink(h.Path("app/current"))
		if err != nil {
			return err
		}
		rev, err := os.ReadFile(h.Path("app/current/REVISION"))
		if err != nil {
			return err
		}
		entries, err := os.ReadDir(h.Path("app/releases"))
		if err != nil {
			return err
		}
		var rels []string
		for _, e := range entries {
			rels = append(rels, e.Name())
		}
		sort.Strings(rels)
		if got := strings.TrimSpace(string(rev)); got != want {
			return fmt.Errorf("%s: current is commit %s, want %s", h.Name, got, want)
		}
		fmt.Printf("%s\n  current -> %s (commit %.12s)\n  releases: %s\n",
			h.Name, target, strings.TrimSpace(string(rev)), strings.Join(rels, ", "))
	}
	return nil
}

// writeDeployEnv writes the deploy.env of the CLI and of serve (serve gets
// its secrets in its environment, not from this file).
func writeDeployEnv(env *testhosts.Env) (string, error) {
	path := filepath.Join(env.Dir, "deploy.env")
	// The hosts go by web1, web2, … as a real pool's would ("HOST as NAME").
	var hosts strings.Builder
	for i, h := range env.Hosts {
		fmt.Fprintf(&hosts, "%s as web%d\n", h.Name, i+1)
	}
	hostsFile := filepath.Join(env.Dir, "hosts.txt")
	if err := os.WriteFile(hostsFile, []byte(hosts.String()), 0o644); err != nil {
		return "", err
	}
	vars := map[string]string{
		"DEPLOY_REPO_URL":     env.RepoURL,
		"DEPLOY_HOSTS_FILE":   hostsFile,
		"DEPLOY_ROOT":         "app",
		"DEPLOY_SSH_KEY":      env.AdminKey,
		"DEPLOY_KNOWN_HOSTS":  env.KnownHosts,
		"DEPLOY_GIT_KEY":      env.GitKey,
		"DEPLOY_DATA_DIR":     filepath.Join(env.Dir, "data"),
		"DEPLOY_WEBHOOK_REPO": webhookRepo,
		"DEPLOY_RESTART_CMD":  `echo "restarted $COMMIT with $APP_PROCESSES processes" >> "$HOME/restarts.log"`,
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := quoteEnv(vars[k])
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		b.WriteString(k + "=" + v + "\n")
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

// quoteEnv writes v for a dotenv file: single quotes keep $ and " literal.
func quoteEnv(v string) (string, error) {
	if !strings.ContainsAny(v, " $\"'#") {
		return v, nil
	}
	if strings.Contains(v, "'") {
		return "", errors.New("a value with a single quote")
	}
	return "'" + v + "'", nil
}
