package e2e

// Checks of the progress a real deploy writes to stderr (the contract: "one
// line per host and step with its duration; --json gives JSON lines"), used
// by TestEndToEndDeploy on the deploys it runs anyway.

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// deploySteps are the steps every host goes through, in order, in a deploy
// that builds a new venv, with a restart command and no health URL, no
// shared paths and default retention. The hooks are steps even when the
// release has none (they then only say so).
var deploySteps = []string{
	"connect", "prepare", "fetch", "pip-copy", "lock", "checkout", "venv", "pip",
	"before-switch", "switch", "restart", "after-switch", "retention",
}

// humanStepLine is a human progress line of a host's finished step:
// "15:04:05 HOST STEP 0.44s".
var humanStepLine = regexp.MustCompile(`^\d\d:\d\d:\d\d (\S+) +(\S+) +(\d+\.\d\d)s$`)

// humanLiveLine is a line printed while a step runs: that it is still
// running (after a while), or with -v a line of its remote output.
var humanLiveLine = regexp.MustCompile(`^\d\d:\d\d:\d\d (\S+) +(\S+) +(running \d+s…|\| .*)$`)

// humanSteps returns, per host, the steps the human progress output shows
// as done, in order, and the order in which the lines came, as "host step".
// A line that names a host but is not a finished step with its duration is
// an error.
func humanSteps(t *testing.T, stderr string, hosts []string) (map[string][]string, []string) {
	t.Helper()
	steps := map[string][]string{}
	var order []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if m := humanStepLine.FindStringSubmatch(l); m != nil {
			steps[m[1]] = append(steps[m[1]], m[2])
			order = append(order, m[1]+" "+m[2])
			continue
		}
		if humanLiveLine.MatchString(l) {
			continue
		}
		for _, h := range hosts {
			if strings.Contains(l, h) {
				t.Errorf("progress line names %s but is not a step with its duration: %q", h, l)
			}
		}
	}
	return steps, order
}

// jsonSteps checks that every stderr line is a JSON object and returns,
// per host, the steps reported done ("step done" records), in order. Each
// such record must carry host, step and a duration in seconds.
func jsonSteps(t *testing.T, stderr string) map[string][]string {
	t.Helper()
	steps := map[string][]string{}
	for i, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("stderr line %d is not JSON (%v): %q", i+1, err, l)
			continue
		}
		if rec["msg"] != "step done" {
			continue
		}
		host, _ := rec["host"].(string)
		step, _ := rec["step"].(string)
		dur, isNum := rec["duration_s"].(float64)
		if host == "" || step == "" || !isNum || dur < 0 {
			t.Errorf("step record without host, step or duration_s: %q", l)
			continue
		}
		steps[host] = append(steps[host], step)
	}
	return steps
}

// checkHostSteps checks that each host went through want, in order, each
// step once.
func checkHostSteps(t *testing.T, format string, got map[string][]string, hosts, want []string) {
	t.Helper()
	for _, h := range hosts {
		if !slices.Equal(got[h], want) {
			t.Errorf("%s progress of %s: steps %v, want %v", format, h, got[h], want)
		}
	}
	if len(got) != len(hosts) {
		t.Errorf("%s progress: steps of %d hosts, want %d: %v", format, len(got), len(hosts), got)
	}
}

// checkSwitchBeforeRestart checks, on the order of progress lines, that
// every host switched before any host restarted: without a health URL the
// whole pool switches together, then restarts host after host.
func checkSwitchBeforeRestart(t *testing.T, order []string) {
	t.Helper()
	lastSwitch, firstRestart := -1, len(order)
	for i, l := range order {
		switch {
		case strings.HasSuffix(l, " switch"):
			lastSwitch = i
		case strings.HasSuffix(l, " restart") && i < firstRestart:
			firstRestart = i
		}
	}
	if lastSwitch < 0 || lastSwitch > firstRestart {
		t.Errorf("a host restarted before every host had switched (without a health URL they switch together):\n%s", strings.Join(order, "\n"))
	}
}

func hostNames(e *e2e) []string {
	var names []string
	for _, h := range e.env.Hosts {
		names = append(names, h.Name)
	}
	return names
}
