package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

// deployFlags are deploy's own flags.
type deployFlags struct {
	commit string
	dryRun bool
}

func newDeployCommand(c *common) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy [--commit SHA] [--hosts H,H] [--dry-run]",
		Short: "deploy the branch tip (or a commit on the branch) now",
		Long: `Deploy the tip of the release branch (or --commit, a commit on it) to every
host, or to --hosts, in hosts-file order: log in everywhere, prepare each
host (lock, fetch, release folder, venv, hooks), then switch current and
restart. A failure while preparing changes nothing that serves traffic.`,
		Example: `  pushdeploy deploy
  pushdeploy deploy --commit 1a2b3c4
  pushdeploy deploy --hosts web2,web3
  pushdeploy deploy --dry-run
  pushdeploy deploy --env-file /etc/pushdeploy/deploy.env --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDeploy(cmd.Context(), c, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.commit, "commit", "", "deploy this `SHA` (full or abbreviated; must be on the release branch) instead of the tip")
	c.addHostsFlag(cmd, "deploy only to")
	fl.BoolVar(&f.dryRun, "dry-run", false, "change nothing: log in, run the preflight checks and print what the deploy would do (exit 1 when it would fail)")
	return cmd
}

func runDeploy(ctx context.Context, c *common, f deployFlags, stdout io.Writer) error {
	commit, dryRun := &f.commit, &f.dryRun
	if *commit != "" {
		if err := deploy.ValidCommitPrefix(*commit); err != nil {
			return usagef("--commit: %v", err)
		}
	}
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	cfg, d, hosts := s.cfg, s.d, s.hosts

	if *dryRun {
		return deployDryRun(ctx, d, hosts, deploy.Push{Branch: cfg.Branch, Commit: *commit}, stdout, c.json)
	}
	dep := deploy.NewDeployment(deploy.Request{Trigger: deploy.TriggerCLI, Actor: osUser(), Push: deploy.Push{Branch: cfg.Branch, Commit: *commit}}, time.Now())
	err = s.record(ctx, c, dep, d.Run)
	printDeployment(stdout, dep, c.json)
	if err != nil {
		return fmt.Errorf("deploy failed: %w", err)
	}
	return nil
}

func printDeployment(w io.Writer, dep *deploy.Deployment, asJSON bool) {
	if !asJSON {
		if dep.Status == deploy.StatusSucceeded {
			fmt.Fprintf(w, "deployed %s (%s) as %s to %d host(s) in %.1fs\n",
				dep.Release.Commit, dep.Release.Branch, dep.ReleaseName, len(dep.Hosts), dep.Finished.Sub(dep.Started).Seconds())
		}
		return
	}
	printJSON(w, dep)
}

// printJSON prints dep as the API shows it (deploy.DeploymentReport, with
// every host's steps): `deploy --json`, `rollback --json` and `history
// --json` print one shape.
func printJSON(w io.Writer, dep *deploy.Deployment) {
	_ = json.NewEncoder(w).Encode(deploy.ReportDeployment(dep, true))
}
