package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/sshrun"
	"github.com/pushdeploy/pushdeploy/gitsrc"
)

// newDeployer wires the adapters into a Deployer. The SSH keys are loaded
// into in-memory agents only while hosts are connected (keyedDialer); the
// returned close function empties them for good as the command ends.
func newDeployer(cfg *config.Config, log *slog.Logger) (*deploy.Deployer, func(), error) {
	checkDataDir(cfg.DataDir, log)
	newRunner := func() (*sshrun.Runner, error) {
		return sshrun.New(sshrun.Config{
			Key:              cfg.SSHKeyPEM,
			Passphrase:       cfg.SSHKeyPassphrase,
			GitKey:           cfg.GitKeyPEM,
			GitKeyPassphrase: cfg.GitKeyPassphrase,
			KnownHosts:       cfg.KnownHosts,
			ConnectTimeout:   cfg.ConnectTimeout,
		})
	}
	// Once now, so that keys or a known_hosts file that cannot be used are
	// reported before anything starts.
	runner, err := newRunner()
	if err != nil {
		return nil, nil, err
	}
	runner.Close()
	dialer := &keyedDialer{open: func() (deploy.Dialer, func(), error) {
		runner, err := newRunner()
		if err != nil {
			return nil, nil, err
		}
		return newHostDialer(runner), func() { runner.Close() }, nil
	}}
	src := gitsrc.New(gitsrc.Config{
		URL:           cfg.RepoURL,
		Branch:        cfg.Branch,
		Key:           cfg.GitKeyPEM,
		KeyPassphrase: cfg.GitKeyPassphrase,
		KnownHosts:    cfg.KnownHosts,
		MirrorDir:     filepath.Join(cfg.DataDir, "mirror.git"),
	})
	d := &deploy.Deployer{
		Dialer:        dialer,
		Resolver:      src,
		Logger:        log,
		Branch:        cfg.Branch,
		Root:          cfg.Root,
		Python:        cfg.Python,
		RestartCmd:    cfg.RestartCmd,
		AppProcesses:  cfg.AppProcesses,
		AppThreads:    cfg.AppThreads,
		LendGitKey:    len(cfg.GitKeyPEM) > 0,
		StepTimeout:   cfg.StepTimeout,
		LockTimeout:   cfg.LockTimeout,
		SharedPaths:   cfg.SharedPaths,
		KeepReleases:  cfg.KeepReleases,
		HealthURL:     cfg.HealthURL,
		HealthTimeout: cfg.HealthTimeout,
		RollbackAll:   cfg.RollbackOnFailure == "all",
		Parallel:      cfg.Parallel,
		VenvReuse:     cfg.VenvReuse,
	}
	if cfg.Fetch == "push" {
		// The deployer streams each release: hosts need no git access, and
		// the deploy key is never lent.
		d.Archiver = src
		d.LendGitKey = false
	}
	return d, dialer.Close, nil
}

func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	c.register(fs)
	commit := fs.String("commit", "", "deploy this `SHA` (full or abbreviated; must be on the release branch) instead of the tip")
	only := fs.String("hosts", "", "deploy only to these `HOSTS` (comma list of hosts-file entries or addresses), in file order")
	dryRun := fs.Bool("dry-run", false, "change nothing: log in, run the preflight checks and print what the deploy would do (exit 1 when it would fail)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *commit != "" {
		if err := deploy.ValidCommitPrefix(*commit); err != nil {
			return usagef("--commit: %v", err)
		}
	}
	log := c.logger(stderr)
	cfg, err := c.load(log)
	if err != nil {
		return err
	}
	hosts, err := selectHosts(cfg.Hosts, splitList(*only))
	if err != nil {
		return err
	}
	d, closeKeys, err := newDeployer(cfg, log)
	if err != nil {
		return err
	}
	defer closeKeys()

	if *dryRun {
		return deployDryRun(ctx, d, hosts, deploy.Push{Branch: cfg.Branch, Commit: *commit}, stdout, c.json)
	}
	// Recorded in the history and notified like serve's deployments; a
	// dry run is neither.
	done, err := observeCLI(ctx, cfg, d, log)
	if err != nil {
		return err
	}
	defer done()
	dep := deploy.NewDeployment(deploy.Request{Trigger: "cli", Actor: osUser(), Push: deploy.Push{Branch: cfg.Branch, Commit: *commit}}, time.Now())
	err = d.Run(ctx, dep, hosts)
	printDeployment(stdout, dep, c.json)
	if err != nil {
		return fmt.Errorf("deploy failed: %w", err)
	}
	return nil
}

// observeCLI makes a command-line deployment recorded in the history and
// notified, like serve's; the returned func flushes both (bounded) before
// the command exits.
func observeCLI(ctx context.Context, cfg *config.Config, d *deploy.Deployer, log *slog.Logger) (func(), error) {
	waitNotified, err := notifyCLI(cfg, log, d)
	if err != nil {
		return nil, err
	}
	closeHistory := recordCLI(ctx, cfg, d, log)
	return func() {
		closeHistory()
		waitNotified()
	}, nil
}

// selectHosts keeps the hosts named in only (all when empty), in file order.
func selectHosts(all []deploy.Host, only []string) ([]deploy.Host, error) {
	if len(only) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, o := range only {
		want[o] = true
	}
	var out []deploy.Host
	for _, h := range all {
		for _, key := range []string{h.Name, h.Addr, h.Address()} {
			if want[key] {
				out = append(out, h)
				delete(want, h.Name)
				delete(want, h.Addr)
				delete(want, h.Address())
				break
			}
		}
	}
	for _, o := range only {
		if want[o] {
			return nil, usagef("--hosts: %q is not in the hosts file", o)
		}
	}
	return out, nil
}

// deploymentJSON is the machine-readable result of a deployment.
type deploymentJSON struct {
	ID       string     `json:"id"`
	Status   string     `json:"status"`
	Branch   string     `json:"branch"`
	Commit   string     `json:"commit"`
	Release  string     `json:"release"`
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	Seconds  float64    `json:"seconds"`
	Error    string     `json:"error,omitempty"`
	Hosts    []hostJSON `json:"hosts"`
}

type hostJSON struct {
	Host    string     `json:"host"`
	Status  string     `json:"status"`
	Seconds float64    `json:"seconds"`
	Steps   []stepJSON `json:"steps,omitempty"`
}

type stepJSON struct {
	Step    string    `json:"step"`
	Status  string    `json:"status"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Error   string    `json:"error,omitempty"`
	Output  string    `json:"output,omitempty"`
}

func printDeployment(w io.Writer, dep *deploy.Deployment, asJSON bool) {
	if !asJSON {
		if dep.Status == deploy.StatusSucceeded {
			fmt.Fprintf(w, "deployed %s (%s) as %s to %d host(s) in %.1fs\n",
				dep.Release.Commit, dep.Release.Branch, dep.ReleaseName, len(dep.Hosts), dep.Finished.Sub(dep.Started).Seconds())
		}
		return
	}
	out := deploymentJSON{
		ID: dep.ID, Status: string(dep.Status), Branch: dep.Release.Branch, Commit: dep.Release.Commit,
		Release: dep.ReleaseName, Started: dep.Started, Finished: dep.Finished,
		Seconds: dep.Finished.Sub(dep.Started).Seconds(),
	}
	if dep.Err != nil {
		out.Error = dep.Err.Error()
	}
	for _, h := range dep.Hosts {
		hj := hostJSON{Host: h.Host.String(), Status: string(h.Status), Seconds: h.Duration.Seconds()}
		for _, s := range h.Steps {
			sj := stepJSON{Step: s.Name, Status: string(s.Status), Started: s.Started, Seconds: s.Duration.Seconds()}
			if s.Err != nil {
				sj.Error, sj.Output = s.Err.Error(), s.Output
			}
			hj.Steps = append(hj.Steps, sj)
		}
		out.Hosts = append(out.Hosts, hj)
	}
	_ = json.NewEncoder(w).Encode(out)
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	c.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	log := c.logger(stderr)
	cfg, err := c.load(log)
	if err != nil {
		return err
	}
	report := func(r deploy.CheckResult) {
		if c.json {
			line := map[string]any{"host": r.Host, "check": r.Name, "ok": r.Err == nil, "detail": r.Detail, "seconds": r.Duration.Seconds()}
			if r.Err != nil {
				line["error"] = r.Err.Error()
			}
			_ = json.NewEncoder(stdout).Encode(line)
			return
		}
		where := r.Host
		if where == "" {
			where = "-"
		}
		if r.Err != nil {
			fmt.Fprintf(stdout, "FAIL  %-28s %-11s %v\n", where, r.Name, r.Err)
			return
		}
		fmt.Fprintf(stdout, "ok    %-28s %-11s %s (%.2fs)\n", where, r.Name, r.Detail, r.Duration.Seconds())
	}
	report(deploy.CheckResult{Name: "config", Detail: fmt.Sprintf("%d host(s), branch %s, root %s", len(cfg.Hosts), cfg.Branch, cfg.Root)})
	d, closeKeys, err := newDeployer(cfg, log)
	if err != nil {
		report(deploy.CheckResult{Name: "keys", Err: err})
		return errReported
	}
	defer closeKeys()
	keys := "admin key loaded into the in-memory agent"
	if len(cfg.GitKeyPEM) > 0 {
		keys += "; deploy key ready to lend"
	}
	report(deploy.CheckResult{Name: "keys", Detail: keys})
	failed := false
	for _, r := range d.Check(ctx, cfg.Hosts) {
		report(r)
		failed = failed || r.Err != nil
	}
	if failed {
		return errReported
	}
	return nil
}
