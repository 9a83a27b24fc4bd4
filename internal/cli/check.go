package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/pushdeploy/pushdeploy/deploy"
)

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
