// Package metrics keeps pushdeploy's Prometheus metrics and serves them in
// the Prometheus text format. It hears deployments through their events (a
// Collector is a deploy.Observer), counts the webhook receiver's answers,
// and reads the queue when scraped. It is the only package that imports the
// Prometheus client: the webhook server gets an http.Handler from it.
//
// Every deployment and host series carries an app label: the
// deployment's app (deploy.DefaultApp, "default", for a deployer with one
// app), so that one Collector serves every app of a deployer.
//
// The metrics live in a registry of their own (plus the Go and process
// collectors), never in the client's global one, so that tests and
// embedders can make as many Collectors as they like.
package metrics

import (
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Queue is what the metrics read from the deployer when scraped
// (deploy.Worker). Health must be safe for concurrent use.
type Queue interface {
	Health() deploy.Health
}

var _ Queue = (*deploy.Worker)(nil)

// Buckets of the deployment duration histogram, in seconds: a code-only
// redeploy takes seconds, a fresh venv on many hosts several minutes.
var deploymentBuckets = []float64{1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800}

// Buckets of the step duration histogram, in seconds: from a symlink
// switch (milliseconds) to a pip install (minutes).
var stepBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}

// Collector holds every pushdeploy_ series. Its methods are safe for
// concurrent use.
type Collector struct {
	reg *prometheus.Registry

	webhooks         *prometheus.CounterVec
	deployments      *prometheus.CounterVec
	deploymentTime   *prometheus.HistogramVec
	stepTime         *prometheus.HistogramVec
	lastSuccess      *prometheus.GaugeVec
	lastFailed       *prometheus.GaugeVec
	hostCommit       *prometheus.GaugeVec
	hostsDisagree    *prometheus.GaugeVec
	hostCommitsKnown *prometheus.GaugeVec
	queues           *queueCollector

	mu sync.Mutex
	// hosts is the series of pushdeploy_host_commit_info each host of
	// each app has now.
	hosts map[hostKey]hostCommit
	// changed is when each host's series last changed through an event,
	// so that a slow seed does not overwrite what a deployment since told.
	changed map[hostKey]time.Time
}

// hostKey is one host of one app: two apps may deploy to the same host
// (in different roots), each with its own commit there.
type hostKey struct{ app, host string }

// hostCommit is the labels of one host's pushdeploy_host_commit_info series.
type hostCommit struct {
	commit, release string
}

// appLabel is the app label of a deployment of app.
func appLabel(app string) string {
	if app == "" {
		return deploy.DefaultApp
	}
	return app
}

// New returns a Collector with every series but the queue's (see
// WatchQueue).
func New() *Collector {
	c := &Collector{
		reg:     prometheus.NewRegistry(),
		hosts:   map[hostKey]hostCommit{},
		changed: map[hostKey]time.Time{},
		queues:  &queueCollector{queues: map[string]Queue{}},
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushdeploy_webhooks_total",
			Help: "Webhook requests answered, by provider and outcome (queued, coalesced, duplicate, ignored, unauthorized, bad_request, too_large, unavailable, error).",
		}, []string{"provider", "outcome"}),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushdeploy_deployments_total",
			Help: "Deployments ended, by app, action (deploy, rollback) and status (succeeded, failed, cancelled, interrupted, refused).",
		}, []string{"app", "action", "status"}),
		deploymentTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushdeploy_deployment_duration_seconds",
			Help:    "Time from a deployment's start to its end, by app, action and status.",
			Buckets: deploymentBuckets,
		}, []string{"app", "action", "status"}),
		stepTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushdeploy_step_duration_seconds",
			Help:    "Time one step took on one host, by app, step and status.",
			Buckets: stepBuckets,
		}, []string{"app", "step", "status"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushdeploy_last_success_timestamp_seconds",
			Help: "When the last successful deployment of each app and action ended (Unix time).",
		}, []string{"app", "action"}),
		lastFailed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushdeploy_last_deployment_failed",
			Help: "1 when the last deployment of each app and action that ran failed, 0 when it succeeded.",
		}, []string{"app", "action"}),
		hostCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushdeploy_host_commit_info",
			Help: "The commit and release each host's current points at, per app (always 1; one series per app and host).",
		}, []string{"app", "host", "commit", "release"}),
		hostsDisagree: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushdeploy_hosts_disagree",
			Help: "1 when the hosts of an app with a known commit are not all on the same commit.",
		}, []string{"app"}),
		hostCommitsKnown: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushdeploy_hosts_known",
			Help: "Hosts of an app whose current commit is known (and so have a pushdeploy_host_commit_info series).",
		}, []string{"app"}),
	}
	c.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		c.webhooks, c.deployments, c.deploymentTime, c.stepTime,
		c.lastSuccess, c.lastFailed, c.hostCommit, c.hostsDisagree, c.hostCommitsKnown,
		c.queues,
	)
	return c
}

// BuildInfo adds pushdeploy_build_info: always 1, labelled with the
// version and VCS revision the binary was built from and its Go version,
// so that dashboards show which deployer runs. Call it once.
func (c *Collector) BuildInfo(version, revision, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pushdeploy_build_info",
		Help:        "The pushdeploy that answers (always 1): its version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	c.reg.MustRegister(g)
}

// NodeInfo adds pushdeploy_node_info{node="..."}: always 1, naming this
// deployer (DEPLOY_NODE_NAME, else HOSTNAME:PID), so that a dashboard of
// several deployers on one database tells which is which. It also labels
// pushdeploy_deployment_running with the node, so that the running
// deployments show which deployer runs each: one node per Collector keeps
// the series bounded. Call it once, before the first scrape.
func (c *Collector) NodeInfo(node string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pushdeploy_node_info",
		Help:        "This deployer (always 1): its name in the API and the history (DEPLOY_NODE_NAME, else HOSTNAME:PID).",
		ConstLabels: prometheus.Labels{"node": node},
	})
	g.Set(1)
	c.reg.MustRegister(g)
	c.queues.mu.Lock()
	c.queues.node = node
	c.queues.mu.Unlock()
}

// WatchQueue adds app's pushdeploy_queue_length and
// pushdeploy_deployment_running, read from q (the app's worker) at each
// scrape, and makes the app's usual outcomes of pushdeploy_deployments_total
// exist from now on (at 0), so that rate() and increase() see the first
// one. Call it once per app ("" is deploy.DefaultApp); a second call for
// the same app replaces its queue (a worker started anew).
func (c *Collector) WatchQueue(app string, q Queue) {
	app = appLabel(app)
	c.queues.watch(app, q)
	for _, action := range []deploy.Action{deploy.ActionDeploy, deploy.ActionRollback} {
		for _, status := range []deploy.Status{deploy.StatusSucceeded, deploy.StatusFailed} {
			c.deployments.WithLabelValues(app, string(action), string(status))
		}
	}
}

// ForgetApp removes every series of app: its queue, deployments and
// hosts. A deployer that stops serving an app (its file was removed from
// DEPLOY_APPS_DIR) calls it once the app's last deployment has ended.
func (c *Collector) ForgetApp(app string) {
	app = appLabel(app)
	c.queues.forget(app)
	only := prometheus.Labels{"app": app}
	c.deployments.DeletePartialMatch(only)
	c.deploymentTime.DeletePartialMatch(only)
	c.stepTime.DeletePartialMatch(only)
	c.lastSuccess.DeletePartialMatch(only)
	c.lastFailed.DeletePartialMatch(only)
	c.hostsDisagree.DeletePartialMatch(only)
	c.hostCommitsKnown.DeletePartialMatch(only)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.hosts {
		if k.app == app {
			c.forgetLocked(k)
		}
	}
	for k := range c.changed {
		if k.app == app {
			delete(c.changed, k)
		}
	}
}

// Handler serves the metrics in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (c *Collector) Handler() http.Handler {
	return promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg})
}

// Registry is the collector's registry, for tests and for adding
// collectors of one's own.
func (c *Collector) Registry() *prometheus.Registry { return c.reg }

// WebhookAnswered counts one webhook request. provider is "" when no
// provider was recognised.
func (c *Collector) WebhookAnswered(provider, outcome string) {
	if provider == "" {
		provider = "unknown"
	}
	c.webhooks.WithLabelValues(provider, outcome).Inc()
}

// queueCollector reads each app's queue at scrape time: one Health call
// per app for both series.
type queueCollector struct {
	mu     sync.Mutex
	queues map[string]Queue // by app
	node   string           // the node label of the running gauge (NodeInfo)
}

var (
	queueDesc   = prometheus.NewDesc("pushdeploy_queue_length", "Deployments of an app waiting, not counting the running one.", []string{"app"}, nil)
	runningDesc = prometheus.NewDesc("pushdeploy_deployment_running", "1 while a deployment of the app runs on this deployer (node: its DEPLOY_NODE_NAME).", []string{"app", "node"}, nil)
)

func (q *queueCollector) watch(app string, queue Queue) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queues[app] = queue
}

func (q *queueCollector) forget(app string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.queues, app)
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- runningDesc
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	// Health takes each worker's own lock: not called under q.mu, so a
	// busy worker never holds up WatchQueue.
	q.mu.Lock()
	queues, node := maps.Clone(q.queues), q.node
	q.mu.Unlock()
	for app, queue := range queues {
		h := queue.Health()
		running := 0.0
		if h.Running != nil {
			running = 1
		}
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(h.QueueLength), app)
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, running, app, node)
	}
}
