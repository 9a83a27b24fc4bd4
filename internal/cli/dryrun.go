package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// deployDryRun prints what deploying push to hosts would do, changing
// nothing on them. The error wraps deploy.ErrWouldFail when the plan found
// a problem (exit status 1).
func deployDryRun(ctx context.Context, d *deploy.Deployer, hosts []deploy.Host, push deploy.Push, stdout io.Writer, asJSON bool) error {
	plan, err := d.Plan(ctx, hosts, push)
	if plan != nil {
		if asJSON {
			_ = json.NewEncoder(stdout).Encode(newPlanJSON(plan))
		} else {
			printPlan(stdout, plan)
		}
	}
	if err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	return nil
}

// planJSON is the machine-readable plan of deploy --dry-run.
type planJSON struct {
	DryRun  bool           `json:"dry_run"`
	OK      bool           `json:"ok"`
	Branch  string         `json:"branch"`
	Commit  string         `json:"commit"`
	Release string         `json:"release"`
	Hosts   []hostPlanJSON `json:"hosts"`
}

type hostPlanJSON struct {
	Host             string   `json:"host"`
	Root             string   `json:"root"`
	RootExists       bool     `json:"root_exists"`
	Current          string   `json:"current"`
	Previous         string   `json:"previous"`
	Releases         []string `json:"releases"`
	RemoveIncomplete []string `json:"remove_incomplete"`
	RemoveOld        []string `json:"remove_old"`
	LockHolder       string   `json:"lock_holder,omitempty"`
	Python           string   `json:"python,omitempty"`
	Steps            []string `json:"steps"`
	Notes            []string `json:"notes"`
	Problems         []string `json:"problems"`
}

func newPlanJSON(p *deploy.Plan) planJSON {
	out := planJSON{DryRun: true, OK: true, Branch: p.Branch, Commit: p.Commit, Release: p.ReleaseName, Hosts: []hostPlanJSON{}}
	list := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	for _, h := range p.Hosts {
		out.OK = out.OK && len(h.Problems) == 0
		out.Hosts = append(out.Hosts, hostPlanJSON{
			Host: h.Host.String(), Root: h.Root, RootExists: h.RootExists,
			Current: h.Current, Previous: h.Previous, Releases: list(h.Releases),
			RemoveIncomplete: list(h.RemoveIncomplete), RemoveOld: list(h.RemoveOld),
			LockHolder: h.LockHolder, Python: h.Python, Steps: list(h.Steps),
			Notes: list(h.Notes), Problems: list(h.Problems),
		})
	}
	return out
}

// printPlan prints the plan for people: per host in deploy order, its root,
// current -> the new release, the steps, what cleanup would remove and any
// problem.
func printPlan(w io.Writer, p *deploy.Plan) {
	fmt.Fprintf(w, "dry run: deploy %s (%s) as release %s to %d host(s); nothing was changed\n",
		p.Commit, p.Branch, p.ReleaseName, len(p.Hosts))
	var failing []string
	for _, h := range p.Hosts {
		fmt.Fprintf(w, "\n%s\n", h.Host)
		if h.Root != "" {
			root := h.Root
			if !h.RootExists {
				root += " (would be created)"
			}
			fmt.Fprintf(w, "  root          %s\n", root)
			fmt.Fprintf(w, "  current       %s -> %s\n", orText(h.Current, "(none)"), p.ReleaseName)
			fmt.Fprintf(w, "  releases      %s\n", orText(strings.Join(h.Releases, ", "), "(none)"))
			fmt.Fprintf(w, "  python        %s\n", orText(h.Python, "?"))
		}
		fmt.Fprintf(w, "  steps         %s\n", strings.Join(h.Steps, ", "))
		if h.Root != "" {
			fmt.Fprintf(w, "  would remove  %s\n", removals(h))
		}
		for _, n := range h.Notes {
			fmt.Fprintf(w, "  note          %s\n", n)
		}
		for _, pr := range h.Problems {
			fmt.Fprintf(w, "  PROBLEM       %s\n", pr)
		}
		if len(h.Problems) > 0 {
			failing = append(failing, h.Host.String())
		}
	}
	if len(failing) > 0 {
		fmt.Fprintf(w, "\nthe deploy would fail on %s\n", strings.Join(failing, ", "))
		return
	}
	fmt.Fprintf(w, "\nno problems found\n")
}

func removals(h deploy.HostPlan) string {
	var parts []string
	for _, r := range h.RemoveIncomplete {
		parts = append(parts, r+" (incomplete)")
	}
	for _, r := range h.RemoveOld {
		parts = append(parts, r+" (retention)")
	}
	return orText(strings.Join(parts, ", "), "nothing")
}

func orText(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}
