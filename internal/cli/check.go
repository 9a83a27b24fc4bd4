package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

func newCheckCommand(c *common) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "preflight: config, keys, host keys, SSH logins, python, git access",
		Long: `Check everything a deploy needs, changing nothing: the configuration, the
keys, every host's key against DEPLOY_KNOWN_HOSTS, the SSH logins, the
root folder, the tools and the Python on each host, and git access from
the deployer and from each host. Exit 1 when a check fails.`,
		Example: `  pushdeploy check
  pushdeploy check --env-file staging.env --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), c, cmd.OutOrStdout())
		},
	}
	c.addHostsFlag(cmd, "check only")
	return cmd
}

func runCheck(ctx context.Context, c *common, stdout io.Writer) error {
	log, cfg, err := c.setup()
	if err != nil {
		return err
	}
	hosts, err := c.selectedHosts(cfg)
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
			fmt.Fprintf(stdout, "FAIL  %-28s %-11s %s\n", where, r.Name, visible(r.Err.Error(), true))
			return
		}
		fmt.Fprintf(stdout, "ok    %-28s %-11s %s (%.2fs)\n", where, r.Name, r.Detail, r.Duration.Seconds())
	}
	report(deploy.CheckResult{Name: "config", Detail: fmt.Sprintf("%d host(s), branch %s, root %s", len(hosts), cfg.Branch, cfg.Root)})
	d, closeKeys, err := newDeployer(cfg, log)
	if err != nil {
		report(deploy.CheckResult{Name: "keys", Err: err})
		return errReported
	}
	defer closeKeys()
	keys := "admin key loaded into the in-memory agent"
	if cfg.SSHKey == "" {
		keys = "no admin key (every host is local)"
	}
	if len(cfg.GitKeyPEM) > 0 {
		keys += "; deploy key ready to lend"
	}
	report(deploy.CheckResult{Name: "keys", Detail: keys})
	failed := false
	for _, r := range d.Check(ctx, hosts) {
		report(r)
		failed = failed || r.Err != nil
	}
	if failed {
		return errReported
	}
	return nil
}
