package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/spf13/cobra"
)

func newReleasesCommand(c *common) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "per host: releases, their commits, which is current",
		Example: `  pushdeploy releases
  pushdeploy releases --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReleases(cmd.Context(), c, cmd.OutOrStdout())
		},
	}
	c.addAppFlag(cmd)
	c.addHostsFlag(cmd, "list only")
	return cmd
}

func runReleases(ctx context.Context, c *common, stdout io.Writer) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	log := s.log
	hosts, err := s.d.Releases(ctx, s.hosts)
	if err != nil {
		return err
	}
	disagree := deploy.Disagree(hosts)
	if c.json {
		_ = json.NewEncoder(stdout).Encode(deploy.ReportReleases(hosts))
		if disagree {
			log.Warn("hosts disagree about current", "current", currentByHost(hosts))
		}
	} else {
		printReleases(stdout, hosts, disagree)
	}
	for _, h := range hosts {
		if h.Err != nil {
			return errReported // printed with its host above
		}
	}
	return nil
}

// printReleases prints a table per host, newest release first:
//
//	web1
//	  RELEASE                 DEPLOYED (UTC)       COMMIT   COMPLETE
//	  20261125183400-1a2b3c4  2026-11-25 18:34:00  1a2b3c4  yes       current
func printReleases(w io.Writer, hosts []deploy.HostReleases, disagree bool) {
	for i, h := range hosts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, h.Host.String())
		switch {
		case h.Err != nil:
			fmt.Fprintf(w, "  ERROR: %s\n", strings.ReplaceAll(visible(h.Err.Error(), true), "\n", "\n  "))
			continue
		case len(h.Releases) == 0:
			fmt.Fprintln(w, "  no releases")
		default:
			fmt.Fprintf(w, "  %-22s  %-19s  %-7s  %-8s\n", "RELEASE", "DEPLOYED (UTC)", "COMMIT", "COMPLETE")
		}
		for _, r := range h.Releases {
			when := "-"
			if !r.Time.IsZero() {
				when = r.Time.Format("2006-01-02 15:04:05")
			}
			commit := "-"
			if r.Commit != "" {
				commit = r.Commit[:7]
			}
			complete := "yes"
			if !r.Complete {
				complete = "no (missing " + strings.Join(r.Missing, ", ") + ")"
			}
			mark := ""
			switch {
			case r.Current:
				mark = "current"
			case r.Previous:
				mark = "previous"
			}
			fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-22s  %-19s  %-7s  %-8s  %s", r.Name, when, commit, complete, mark), " "))
		}
		if h.CurrentTarget != "" && h.Current == "" {
			fmt.Fprintf(w, "  current points at %q, not at a release\n", h.CurrentTarget)
		}
	}
	if disagree {
		fmt.Fprintf(w, "\nwarning: hosts disagree about current: %s\n", currentByHost(hosts))
	}
}

// currentByHost is "web1=A web2=B" for the hosts that could be read.
func currentByHost(hosts []deploy.HostReleases) string {
	var parts []string
	for _, h := range hosts {
		if h.Err != nil {
			continue
		}
		cur := h.Current
		if cur == "" {
			cur = "(none)"
		}
		parts = append(parts, h.Host.String()+"="+cur)
	}
	return strings.Join(parts, " ")
}
