package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func runRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
	c.register(fs)
	to := fs.String("to", "", "go back (or forward) to `RELEASE`, a folder name under releases/ (default: each host's release before current)")
	dryRun := fs.Bool("dry-run", false, "log in, check the target on every host and print the plan; change nothing (not even the lock file)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *to != "" {
		if err := deploy.ValidReleaseName(*to); err != nil {
			return usagef("--to: %v", err)
		}
	}
	log := c.logger(stderr)
	cfg, err := c.load(log)
	if err != nil {
		return err
	}
	d, closeKeys, err := newDeployer(cfg, log)
	if err != nil {
		return err
	}
	defer closeKeys()

	if *dryRun {
		targets, err := d.PlanRollback(ctx, cfg.Hosts, *to)
		if targets != nil {
			printRollbackPlan(stdout, *to, targets, d.RollbackSteps(), c.json)
		}
		if err != nil {
			return fmt.Errorf("dry run: %w", err)
		}
		return nil
	}
	// Recorded in the history and notified like serve's deployments; a
	// dry run is neither.
	done, err := observeCLI(ctx, cfg, d, log)
	if err != nil {
		return err
	}
	defer done()
	dep := deploy.NewDeployment(deploy.Request{Action: "rollback", Trigger: "cli", Actor: osUser(), Release: *to}, time.Now())
	err = d.Rollback(ctx, dep, cfg.Hosts)
	printRollback(stdout, dep, c.json)
	if err != nil {
		return fmt.Errorf("rollback failed: %w", err)
	}
	return nil
}

// rollbackJSON is the machine-readable result of a rollback: a deployment,
// with every step's output (the verify step's says where the host went).
type rollbackJSON struct {
	deploymentJSON
	Action    string `json:"action"`
	Requested string `json:"requested_release,omitempty"`
}

func printRollback(w io.Writer, dep *deploy.Deployment, asJSON bool) {
	if !asJSON {
		if dep.Status != deploy.StatusSucceeded {
			return
		}
		took := dep.Finished.Sub(dep.Started).Seconds()
		if dep.ReleaseName != "" {
			fmt.Fprintf(w, "rolled back %d host(s) to %s (%s) in %.1fs\n", len(dep.Hosts), dep.ReleaseName, dep.Release.Commit, took)
		} else {
			fmt.Fprintf(w, "rolled back %d host(s), each to its release before current (they differ: see the verify lines) in %.1fs\n", len(dep.Hosts), took)
		}
		return
	}
	out := rollbackJSON{
		deploymentJSON: deploymentJSON{
			ID: dep.ID, Status: string(dep.Status), Branch: dep.Release.Branch, Commit: dep.Release.Commit,
			Release: dep.ReleaseName, Started: dep.Started, Finished: dep.Finished,
			Seconds: dep.Finished.Sub(dep.Started).Seconds(),
		},
		Action: "rollback", Requested: dep.Request.Release,
	}
	if dep.Err != nil {
		out.Error = dep.Err.Error()
	}
	for _, h := range dep.Hosts {
		hj := hostJSON{Host: h.Host.String(), Status: string(h.Status), Seconds: h.Duration.Seconds()}
		for _, s := range h.Steps {
			sj := stepJSON{Step: s.Name, Status: string(s.Status), Seconds: s.Duration.Seconds(), Output: s.Output}
			if s.Err != nil {
				sj.Error = s.Err.Error()
			}
			hj.Steps = append(hj.Steps, sj)
		}
		out.Hosts = append(out.Hosts, hj)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// rollbackPlanJSON is `rollback --dry-run --json`.
type rollbackPlanJSON struct {
	DryRun  bool                   `json:"dry_run"`
	Release string                 `json:"requested_release,omitempty"`
	OK      bool                   `json:"ok"`
	Steps   []string               `json:"steps"`
	Hosts   []rollbackPlanHostJSON `json:"hosts"`
}

type rollbackPlanHostJSON struct {
	Host    string `json:"host"`
	Current string `json:"current,omitempty"`
	Target  string `json:"target,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Error   string `json:"error,omitempty"`
}

// printRollbackPlan prints where a rollback would take each host, and the
// steps it would run there.
func printRollbackPlan(w io.Writer, to string, targets []deploy.RollbackTarget, steps []string, asJSON bool) {
	steps = append([]string{"lock"}, steps...)
	if asJSON {
		out := rollbackPlanJSON{DryRun: true, Release: to, OK: true, Steps: steps, Hosts: []rollbackPlanHostJSON{}}
		for _, t := range targets {
			hj := rollbackPlanHostJSON{Host: t.Host.String(), Current: t.From.Name, Target: t.To.Name, Commit: t.To.Commit}
			if t.Err != nil {
				hj.Error, out.OK = t.Err.Error(), false
			}
			out.Hosts = append(out.Hosts, hj)
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	fmt.Fprintf(w, "rollback plan (dry run, nothing was changed); on each host in order: %s\n", strings.Join(steps, ", "))
	for _, t := range targets {
		switch {
		case t.Err != nil:
			msg := strings.TrimPrefix(t.Err.Error(), "host "+t.Host.String()+": ")
			fmt.Fprintf(w, "  %-24s CANNOT: %s\n", t.Host, strings.ReplaceAll(msg, "\n", "\n  "))
		case t.From.Name == t.To.Name:
			fmt.Fprintf(w, "  %-24s %s already current: left alone\n", t.Host, t.To.Name)
		default:
			fmt.Fprintf(w, "  %-24s %s -> %s  commit %s\n", t.Host, t.From.Name, t.To.Name, t.To.Commit)
		}
	}
}
