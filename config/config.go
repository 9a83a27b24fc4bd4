// Package config reads pushdeploy's configuration: the DEPLOY_ environment
// variables of the contract, optionally loaded from an env file, checked once
// and returned as a Config. Only main imports it; main copies the values it
// needs into the fields of the other components.
//
// Load only reads the process environment: the env file's values go into
// the Config, never into the environment that the commands pushdeploy
// starts inherit.
package config

import (
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Prefix is the prefix of every variable read into a Config.
const Prefix = "DEPLOY"

// DefaultEnvFile is read by Load when no env file is named explicitly and the
// file exists.
const DefaultEnvFile = "deploy.env"

// Config holds every DEPLOY_ variable. Each field's envconfig tag names the
// variable (without the DEPLOY_ prefix), desc gives its one-line meaning (the
// comment in deploy.env.example) and default its default. Fields tagged
// secret hold credentials: never log them. Fields tagged scope:"server"
// are the server's own: the same for every app, and never set in an app
// file of DEPLOY_APPS_DIR; every other variable is per app.
//
// The fields tagged ignored are not variables: Load (through Validate) fills
// them from the files the variables name.
type Config struct {
	RepoURL          string `envconfig:"REPO_URL" desc:"required: the app's git repository (ssh://…, git@host:path, https://…, or a local path)"`
	Branch           string `envconfig:"BRANCH" default:"release" desc:"the release branch: the only branch that is ever deployed"`
	HostsFile        string `envconfig:"HOSTS_FILE" default:"hosts.txt" desc:"the pool: one host a line, [user@]host[:port]; # comments and blank lines allowed; deployed in file order"`
	Root             string `envconfig:"ROOT" default:"/srv/app" desc:"root folder on every host (a relative path is relative to the login user's home)"`
	SSHUser          string `envconfig:"SSH_USER" default:"deploy" desc:"login user where a host line names none"`
	SSHKey           string `envconfig:"SSH_KEY" desc:"required unless every host is local: the admin private key (a file) that logs into the hosts"`
	SSHKeyPassphrase string `envconfig:"SSH_KEY_PASSPHRASE" secret:"true" desc:"the passphrase of DEPLOY_SSH_KEY, if any"`
	KnownHosts       string `envconfig:"KNOWN_HOSTS" default:"~/.ssh/known_hosts" desc:"host keys of the hosts and of the git server; an unknown or changed key is refused"`
	GitKey           string `envconfig:"GIT_KEY" desc:"the read-only deploy key (a file), lent to each host for the clone only; empty: hosts use their own keys"`
	Python           string `envconfig:"PYTHON" default:"python3" desc:"the interpreter on the hosts that builds each release's venv"`
	RestartCmd       string `envconfig:"RESTART_CMD" desc:"shell command run on each host after its switch, in the new release folder; empty: no restart"`
	AppProcesses     int    `envconfig:"APP_PROCESSES" default:"2" desc:"passed to DEPLOY_RESTART_CMD as APP_PROCESSES (e.g. mod_wsgi-express --processes)"`
	AppThreads       int    `envconfig:"APP_THREADS" default:"15" desc:"passed to DEPLOY_RESTART_CMD as APP_THREADS"`
	KeepReleases     int    `envconfig:"KEEP_RELEASES" default:"5" desc:"releases kept per host; older ones are removed after a successful deploy (never current or the one before it)"`
	// SharedPaths are relative paths, trimmed, without empty items.
	SharedPaths     []string      `envconfig:"SHARED_PATHS" desc:"comma list of paths linked from <root>/shared/ into each release (e.g. .env,media,logs)"`
	HealthURL       string        `envconfig:"HEALTH_URL" desc:"URL checked after each host's switch; {host} is replaced by the host's address; non-2xx = failed"`
	StepTimeout     time.Duration `envconfig:"STEP_TIMEOUT" default:"10m" desc:"longest any one step may take on a host"`
	Listen          string        `envconfig:"LISTEN" scope:"server" default:":8080" desc:"HTTP listen address of serve"`
	WebhookSecret   string        `envconfig:"WEBHOOK_SECRET" secret:"true" desc:"shared secret for webhook signatures; serve refuses to start without it unless DEPLOY_WEBHOOK_INSECURE=true"`
	APIToken        string        `envconfig:"API_TOKEN" scope:"server" secret:"true" desc:"bearer token for /api/*; empty: /api/* answers 404"`
	DataDir         string        `envconfig:"DATA_DIR" scope:"server" default:"./data" desc:"the deployer's own state (history database, git mirror)"`
	WebhookInsecure bool          `envconfig:"WEBHOOK_INSECURE" scope:"server" default:"false" desc:"true: accept unsigned webhooks (local experiments only)"`
	WebhookRepo     string        `envconfig:"WEBHOOK_REPO" desc:"repository full name (e.g. team/app); pushes from any other repository are ignored"`
	HealthTimeout   time.Duration `envconfig:"HEALTH_TIMEOUT" default:"60s" desc:"how long DEPLOY_HEALTH_URL may take to answer 2xx after a switch"`
	// RollbackOnFailure is "host" or "all".
	RollbackOnFailure string `envconfig:"ROLLBACK_ON_FAILURE" default:"host" desc:"host: a host that fails its health check goes back; all: every host switched in this deployment goes back"`
	Parallel          int    `envconfig:"PARALLEL" default:"1" desc:"hosts prepared at once (1 = one after another)"`
	// RestartBatch is N or N% (deploy.ParseRestartBatch).
	RestartBatch string `envconfig:"RESTART_BATCH" default:"1" desc:"hosts restarted (and health-checked) at once: N, or N% of the pool (rounded down, at least 1); never more than leaves one host serving (1 = one after another)"`
	VenvReuse    bool   `envconfig:"VENV_REUSE" default:"true" desc:"share one venv among releases with the same requirements.txt and Python; false: a fresh venv per release"`
	// Fetch is "clone" or "push".
	Fetch          string `envconfig:"FETCH" default:"clone" desc:"clone: hosts clone from DEPLOY_REPO_URL; push: the deployer streams the commit to the hosts"`
	NotifyURL      string `envconfig:"NOTIFY_URL" desc:"JSON POST (Slack-compatible text) on deployment start, success, failure"`
	BitbucketToken string `envconfig:"BITBUCKET_TOKEN" secret:"true" desc:"sets Bitbucket Cloud build statuses on deployed commits"`
	// WebhookAllowCIDRs are valid CIDR prefixes (netip.ParsePrefix), trimmed.
	WebhookAllowCIDRs []string `envconfig:"WEBHOOK_ALLOW_CIDRS" scope:"server" desc:"comma list of networks (CIDR, e.g. 10.0.0.0/8) allowed to call /webhook; empty: any"`

	// Extensions of the contract.

	GitKeyPassphrase string        `envconfig:"GIT_KEY_PASSPHRASE" secret:"true" desc:"the passphrase of DEPLOY_GIT_KEY, if any"`
	ConnectTimeout   time.Duration `envconfig:"CONNECT_TIMEOUT" default:"10s" desc:"longest an SSH connection to a host (connect and handshake, through its jump hosts if any) may take"`
	SSHJump          string        `envconfig:"SSH_JUMP" desc:"jump host (bastion) the SSH connections to the hosts go through, [user@]host[:port], as OpenSSH's ProxyJump (a comma list for several hops); a hosts-file line may name its own (HOST via JUMP, or via none); empty: direct"`
	LockTimeout      time.Duration `envconfig:"LOCK_TIMEOUT" default:"2m" desc:"how long a deploy waits for another deployer's lock on a host"`
	LocalUser        string        `envconfig:"LOCAL_USER" desc:"the user every command of the local host runs as (pushdeploy must run as root), with an environment of its own; empty: the deployer's own user, and local cannot be listed with SSH hosts"`
	HistoryDays      int           `envconfig:"HISTORY_DAYS" scope:"server" default:"90" desc:"days of deployment history kept in DEPLOY_DATA_DIR; 0 keeps all"`
	StatusPublic     bool          `envconfig:"STATUS_PUBLIC" scope:"server" default:"false" desc:"true: the status page at / shows deployments without the API token (its buttons still need it)"`
	PublicURL        string        `envconfig:"PUBLIC_URL" scope:"server" desc:"the address users reach serve at (e.g. https://deploy.example.com): links in notifications and build statuses"`
	BitbucketAPIURL  string        `envconfig:"BITBUCKET_API_URL" default:"https://api.bitbucket.org/2.0" desc:"Bitbucket Cloud API base, for build statuses"`
	// RateLimit 0 means no limit.
	RateLimit int `envconfig:"RATE_LIMIT" scope:"server" default:"20" desc:"requests a second one client address (an IPv6 /64) may send to /webhook, and apart to /api/* and the status page's event streams; 0: no limit"`
	RateBurst int `envconfig:"RATE_BURST" scope:"server" default:"100" desc:"requests one client address may send at once above DEPLOY_RATE_LIMIT"`
	// WebhookMaxBody is in bytes, from 1 KiB to 32 MiB.
	WebhookMaxBody int `envconfig:"WEBHOOK_MAX_BODY" scope:"server" default:"1048576" desc:"largest webhook body serve reads, in bytes (1 MiB; a push of hundreds of commits to GitHub can need more, up to its 25 MB: 26214400); a bigger one is answered 413"`
	// TrustedProxies are valid CIDR prefixes, trimmed.
	TrustedProxies []string `envconfig:"TRUSTED_PROXIES" scope:"server" desc:"comma list of networks (CIDR) of reverse proxies whose X-Forwarded-For names the client; empty: the client is the connection's peer"`

	// Several apps (docs/apps.md).

	AppsDir string `envconfig:"APPS_DIR" scope:"server" desc:"a folder of app files: each NAME.env in it is one app (NAME: a-z, 0-9 and -, at most 63), with that app's variables; empty: one app, named default, from the environment and deploy.env"`
	// PromoteFrom is the name of another app of AppsDir.
	PromoteFrom string `envconfig:"PROMOTE_FROM" desc:"(in an app file) the app whose successfully deployed commits are the only ones this app deploys (e.g. production from staging)"`

	// Several deployers (docs/high-availability.md).

	DatabaseURL string `envconfig:"DATABASE_URL" scope:"server" secret:"true" desc:"postgres://USER:PASSWORD@HOST:5432/DB: history, the queue and delivery ids live in PostgreSQL, shared by every serve that names the same database; empty: SQLite in DEPLOY_DATA_DIR (one deployer)"`
	// PollInterval 0 means never.
	PollInterval time.Duration `envconfig:"POLL_INTERVAL" default:"0" desc:"how often serve resolves the app's branch and deploys a tip it has not seen (a push whose webhook was lost); 0: never"`
	// NodeName "" means hostname:pid, filled in by serve.
	NodeName string `envconfig:"NODE_NAME" scope:"server" desc:"this deployer's name, recorded with each deployment it runs (API, history, metrics; several deployers on one database); empty: HOSTNAME:PID"`

	// Filled by Validate from the files above.

	// SSHKeyPEM is the content of the DEPLOY_SSH_KEY file.
	SSHKeyPEM []byte `ignored:"true"`
	// GitKeyPEM is the content of the DEPLOY_GIT_KEY file; nil when unset.
	GitKeyPEM []byte `ignored:"true"`
	// Hosts is the parsed DEPLOY_HOSTS_FILE, in file order; never empty
	// after a successful Validate.
	Hosts []deploy.Host `ignored:"true"`
}
