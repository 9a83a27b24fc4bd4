package e2e

import "time"

// The JSON the binary prints with --json, as these tests expect it: the
// contract seen from outside, kept apart from the CLI's own types on
// purpose, so that a renamed field in the CLI fails here.

// deploymentJSON is the machine-readable result of a deployment: the
// shape of GET /api/deployments/{id} (docs/serve.md).
type deploymentJSON struct {
	ID       string     `json:"id"`
	Status   string     `json:"status"`
	Branch   string     `json:"branch"`
	Commit   string     `json:"commit"`
	Release  string     `json:"release"`
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	Seconds  float64    `json:"duration_s"`
	Error    string     `json:"error,omitempty"`
	Hosts    []hostJSON `json:"hosts"`
}

type hostJSON struct {
	Host    string     `json:"host"`
	Status  string     `json:"status"`
	Seconds float64    `json:"duration_s"`
	Steps   []stepJSON `json:"steps"`
}

type stepJSON struct {
	Step    string    `json:"step"`
	Status  string    `json:"status"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"duration_s"`
	Error   string    `json:"error,omitempty"`
	Output  string    `json:"output_tail,omitempty"`
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

// with every step's output (the verify step's says where the host went).
type rollbackJSON struct {
	deploymentJSON
	Action    string `json:"action"`
	Requested string `json:"requested_release,omitempty"`
}
