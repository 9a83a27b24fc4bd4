package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

// rollbackFlags are rollback's own flags.
type rollbackFlags struct {
	to     string
	dryRun bool
	noWait bool
}

func newRollbackCommand(c *common) *cobra.Command {
	var f rollbackFlags
	cmd := &cobra.Command{
		Use:   "rollback [--to RELEASE] [--dry-run] [--no-wait]",
		Short: "point current back on every host (default: the release before current)",
		Long: `Point current back to the release before it on every host (or to --to, a
folder name under releases/), restart, and record it in revisions.log.
Every host is checked first: a host that lacks the target changes nothing.
With DEPLOY_DATABASE_URL it takes its turn in the deployers' queue, as
deploy does (--no-wait: at once or refused).`,
		Example: `  pushdeploy rollback
  pushdeploy rollback --to 20261125183400-1a2b3c4
  pushdeploy rollback --dry-run
  pushdeploy rollback --hosts web2`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRollback(cmd.Context(), c, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "go back (or forward) to `RELEASE`, a folder name under releases/ (default: each host's release before current)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "log in, check the target on every host and print the plan; change nothing (not even the lock file)")
	c.addAppFlag(cmd)
	c.addHostsFlag(cmd, "roll back only")
	addNoWaitFlag(cmd, &f.noWait)
	return cmd
}

func runRollback(ctx context.Context, c *common, f rollbackFlags, stdout io.Writer) error {
	to, dryRun := &f.to, &f.dryRun
	if *to != "" {
		if err := deploy.ValidReleaseName(*to); err != nil {
			return usagef("--to: %v", err)
		}
	}
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	d, hosts := s.d, s.hosts

	if *dryRun {
		targets, err := d.PlanRollback(ctx, hosts, *to)
		if targets != nil {
			printRollbackPlan(stdout, *to, targets, d.RollbackSteps(), c.json)
		}
		if err != nil {
			return fmt.Errorf("dry run: %w", err)
		}
		return nil
	}
	dep := deploy.NewDeployment(deploy.Request{Action: deploy.ActionRollback, Trigger: deploy.TriggerCLI, Actor: osUser(), Release: *to}, time.Now())
	dep.App = s.cfg.Name
	err = s.record(ctx, c, func(ctx context.Context, _ hostsDeployed) error {
		done, err := takeTurn(ctx, s.cfg.Config, s.log, c.stderr, dep, f.noWait)
		if err != nil {
			return err
		}
		defer done()
		return d.Rollback(ctx, dep, hosts) // never gated by promotion
	})
	printRollback(stdout, dep, c.json)
	if err != nil {
		return fmt.Errorf("rollback failed: %w", err)
	}
	return nil
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
	printJSON(w, dep)
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
func printRollbackPlan(w io.Writer, to string, targets []deploy.RollbackTarget, rollbackSteps []deploy.Step, asJSON bool) {
	steps := []string{string(deploy.StepLock)}
	for _, s := range rollbackSteps {
		steps = append(steps, string(s))
	}
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
