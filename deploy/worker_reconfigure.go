package deploy

import "slices"

// workerSetup is what Reconfigure changes in a Worker: its Deployer, its
// pool and the app it promotes from.
type workerSetup struct {
	deployer    *Deployer
	hosts       []Host
	promoteFrom string
}

// Reconfigure gives the worker a new Deployer, pool and PromoteFrom (an
// app's file changed while the server runs). A deployment that is running
// finishes as it started; the next one, and every request from now on, use
// the new ones. Safe for concurrent use; after Run has started, the fields
// change only through Reconfigure.
func (w *Worker) Reconfigure(d *Deployer, hosts []Host, promoteFrom string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = &workerSetup{deployer: d, hosts: slices.Clone(hosts), promoteFrom: promoteFrom}
	if w.running == nil {
		w.applyPendingLocked()
	}
}

// applyPendingLocked puts a Reconfigure into effect: between deployments
// (w.mu held, nothing running), so that a deployment never sees two
// configurations.
func (w *Worker) applyPendingLocked() {
	if p := w.pending; p != nil {
		w.Deployer, w.Hosts, w.PromoteFrom = p.deployer, p.hosts, p.promoteFrom
		w.pending = nil
	}
}

// setup returns the Deployer, pool and PromoteFrom that requests are
// checked against (Submit) and the hosts are read with (Releases): those
// of the next deployment, given by Reconfigure while one runs.
func (w *Worker) setup() workerSetup {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.pending; p != nil {
		return *p
	}
	return workerSetup{deployer: w.Deployer, hosts: w.Hosts, promoteFrom: w.PromoteFrom}
}

// runningHosts are the hosts of the running deployment's pool that names
// select, for Run's goroutine: w.Hosts changes only there or while no
// deployment runs, so it reads it without the lock.
func (w *Worker) runningHosts(names []string) ([]Host, error) {
	hosts, err := SelectHosts(w.Hosts, names)
	if err != nil {
		return nil, &RequestError{Msg: "hosts: " + err.Error()}
	}
	return hosts, nil
}

// nextDeployerLocked is the Deployer of the next deployment (w.mu held):
// the one Reconfigure gave while a deployment runs, else the current one.
// A request queued now is observed (notified, recorded) by it.
func (w *Worker) nextDeployerLocked() *Deployer {
	if w.pending != nil {
		return w.pending.deployer
	}
	return w.Deployer
}
