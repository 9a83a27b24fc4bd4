package deploy

import (
	"fmt"
	"strconv"
	"strings"
)

// RestartBatch is how many hosts of a deployment are restarted (and
// health-checked) at once: N hosts, or N percent of the deployment's hosts
// when Percent is set. The zero value means one host at a time.
type RestartBatch struct {
	N       int
	Percent bool
}

// ParseRestartBatch reads DEPLOY_RESTART_BATCH's forms: a whole number of
// hosts (at least 1), or "N%" of the pool with N from 1 to 100.
func ParseRestartBatch(s string) (RestartBatch, error) {
	digits, percent := strings.CutSuffix(s, "%")
	n, err := strconv.Atoi(digits)
	// Digits only: Atoi would take "+2" and " 2" is refused by it anyway.
	if err != nil || strings.TrimLeft(digits, "0123456789") != "" || n < 1 || (percent && n > 100) {
		return RestartBatch{}, fmt.Errorf("%q is neither a number of hosts (1 or more) nor a share of the pool (1%% to 100%%)", s)
	}
	return RestartBatch{N: n, Percent: percent}, nil
}

// String gives the batch back in ParseRestartBatch's form.
func (b RestartBatch) String() string {
	if b.Percent {
		return strconv.Itoa(b.N) + "%"
	}
	return strconv.Itoa(max(b.N, 1))
}

// Size is how many hosts of a pool of that many go at once: N, or N% of
// the pool rounded down, at least 1 — and, in a pool of two or more, at
// most all hosts but one, so that one host always serves while the others
// restart.
func (b RestartBatch) Size(pool int) int {
	n := b.N
	if b.Percent {
		n = pool * b.N / 100
	}
	if pool < 2 {
		return 1
	}
	return max(min(n, pool-1), 1)
}

// batches cuts runs, in order, into the restart batches.
func (d *Deployer) batches(runs []*hostRun) [][]*hostRun {
	size := d.RestartBatch.Size(len(runs))
	var out [][]*hostRun
	for first := 0; first < len(runs); first += size {
		out = append(out, runs[first:min(first+size, len(runs))])
	}
	return out
}

// atOnce runs step (a switch, an activation: restart, health,
// after-switch) on the batch's hosts at once and waits for all of them: a
// host whose batch-mate fails still finishes, so that the batch is in a
// known state when it is sent back. It returns the first failure in host
// order.
func atOnce(batch []*hostRun, step func(*hostRun) error) error {
	errs := make([]error, len(batch))
	forEachHost(batch, len(batch), func(i int, r *hostRun) { errs[i] = step(r) })
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
