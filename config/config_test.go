package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kelseyhightower/envconfig"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestLoadDefaults(t *testing.T) {
	f := setup(t)
	c, warnings, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings(t, warnings)
	want := &Config{
		RepoURL:           "git@bitbucket.org:team/app.git",
		Branch:            "release",
		HostsFile:         "hosts.txt",
		Root:              "/srv/app",
		SSHUser:           "deploy",
		SSHKey:            f.key,
		KnownHosts:        f.knownHosts,
		Python:            "python3",
		AppProcesses:      2,
		AppThreads:        15,
		KeepReleases:      5,
		StepTimeout:       10 * time.Minute,
		Listen:            ":8080",
		DataDir:           "./data",
		HealthTimeout:     60 * time.Second,
		RollbackOnFailure: "host",
		Parallel:          1,
		RestartBatch:      "1",
		VenvReuse:         true,
		Fetch:             "clone",
		ConnectTimeout:    10 * time.Second,
		LockTimeout:       2 * time.Minute,
		HistoryDays:       90,
		BitbucketAPIURL:   "https://api.bitbucket.org/2.0",
		RateLimit:         20,
		RateBurst:         100,
		WebhookMaxBody:    1 << 20,
		SSHKeyPEM:         c.SSHKeyPEM,
		Hosts: []deploy.Host{
			{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
			{Name: "ops@web2:2222", User: "ops", Addr: "web2", Port: 2222},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
	key, _ := os.ReadFile(f.key)
	if string(c.SSHKeyPEM) != string(key) || len(key) == 0 {
		t.Errorf("got SSHKeyPEM %q, want the key file's content", c.SSHKeyPEM)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string // "" value: unset
		envFile      string            // content of deploy.env, when set
		fileMode     os.FileMode
		prepare      func(t *testing.T, f fixture)
		wantErr      []string
		wantWarnings []string
		check        func(t *testing.T, c *Config)
	}{
		{
			name:    "missing required",
			env:     map[string]string{"DEPLOY_REPO_URL": ""},
			wantErr: []string{"DEPLOY_REPO_URL is required: the app's git repository (ssh://"},
		},
		{
			name:    "repo missing",
			env:     map[string]string{"DEPLOY_REPO_URL": "", "DEPLOY_SSH_KEY": ""},
			wantErr: []string{"DEPLOY_REPO_URL is required"},
		},
		{
			name:    "repo missing, and the files' problems too",
			env:     map[string]string{"DEPLOY_REPO_URL": "", "DEPLOY_HOSTS_FILE": "/nonexistent/hosts.txt"},
			wantErr: []string{"DEPLOY_REPO_URL is required", "DEPLOY_HOSTS_FILE: cannot read /nonexistent/hosts.txt"},
		},
		{
			name:    "repo missing next to a bad value",
			env:     map[string]string{"DEPLOY_REPO_URL": "", "DEPLOY_PARALLEL": "abc"},
			wantErr: []string{"DEPLOY_REPO_URL is required", `DEPLOY_PARALLEL: "abc" is not a whole number`},
		},
		{
			name:    "ssh key missing",
			env:     map[string]string{"DEPLOY_SSH_KEY": ""},
			wantErr: []string{"DEPLOY_SSH_KEY is required: the admin private key (a file) that logs into the hosts (only a pool of `local` hosts needs none)"},
		},
		{
			name:    "required set to empty",
			env:     map[string]string{"DEPLOY_REPO_URL": ""},
			envFile: "DEPLOY_REPO_URL=\n",
			wantErr: []string{"DEPLOY_REPO_URL is required"},
		},
		{
			name:    "bad duration",
			env:     map[string]string{"DEPLOY_STEP_TIMEOUT": "10x"},
			wantErr: []string{`DEPLOY_STEP_TIMEOUT: "10x" is not a duration (examples: 90s, 10m`},
		},
		{
			name: "bad values are all reported",
			env: map[string]string{
				"DEPLOY_APP_PROCESSES": "two", "DEPLOY_VENV_REUSE": "yes", "DEPLOY_LOCK_TIMEOUT": "5",
			},
			wantErr: []string{
				`DEPLOY_APP_PROCESSES: "two" is not a whole number`,
				`DEPLOY_VENV_REUSE: "yes" is not true or false`,
				`DEPLOY_LOCK_TIMEOUT: "5" is not a duration`,
			},
		},
		{
			name:    "mistyped variable in the environment",
			env:     map[string]string{typoBranch: "main"},
			wantErr: []string{"DEPLOY_BRNACH is not a pushdeploy variable; did you mean DEPLOY_BRANCH?"},
		},
		{
			name:    "unknown variable without suggestion",
			env:     map[string]string{typoColour: "blue"},
			wantErr: []string{"DEPLOY_COLOUR is not a pushdeploy variable (see deploy.env.example"},
		},
		{
			name:    "mistyped variable in the env file",
			envFile: "DEPLOY_BRANCH=main\n\nDEPLOY_STEP_TIMEOT=5m\n",
			wantErr: []string{"deploy.env:3: DEPLOY_STEP_TIMEOT is not a pushdeploy variable; did you mean DEPLOY_STEP_TIMEOUT?"},
		},
		{
			name:    "lower-case name in the env file",
			envFile: "deploy_branch=main\n",
			wantErr: []string{"deploy.env:1: deploy_branch is not a pushdeploy variable; did you mean DEPLOY_BRANCH?"},
		},
		{
			name:    "env file value used",
			envFile: "# settings\nexport DEPLOY_BRANCH=production\nDEPLOY_SHARED_PATHS=\" .env, media,\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Branch != "production" {
					t.Errorf("got Branch %q, want production", c.Branch)
				}
				if diff := cmp.Diff([]string{".env", "media"}, c.SharedPaths); diff != "" {
					t.Errorf("SharedPaths (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "real environment wins over the env file",
			env:     map[string]string{"DEPLOY_BRANCH": "from-env"},
			envFile: "DEPLOY_BRANCH=from-file\nDEPLOY_ROOT=apps/web\n",
			check: func(t *testing.T, c *Config) {
				if c.Branch != "from-env" || c.Root != "apps/web" {
					t.Errorf("got Branch %q, Root %q; want from-env, apps/web", c.Branch, c.Root)
				}
			},
		},
		{
			name:         "secrets in an env file others can read",
			envFile:      "DEPLOY_SSH_KEY_PASSPHRASE=s3cret\n",
			fileMode:     0o644,
			wantWarnings: []string{"deploy.env holds DEPLOY_SSH_KEY_PASSPHRASE but other users can read it (mode 0644); run chmod 600"},
		},
		{
			name: "unprefixed names are not read",
			env:  map[string]string{"BRANCH": "evil", "PYTHON": "/usr/bin/python2", "ROOT": "/"},
			check: func(t *testing.T, c *Config) {
				if c.Branch != "release" || c.Python != "python3" || c.Root != "/srv/app" {
					t.Errorf("got Branch %q, Python %q, Root %q; want the defaults", c.Branch, c.Python, c.Root)
				}
			},
		},
		{
			name:    "bad branch",
			env:     map[string]string{"DEPLOY_BRANCH": "a..b"},
			wantErr: []string{`DEPLOY_BRANCH: branch name "a..b" contains '..'`},
		},
		{
			name:    "branch like an option",
			env:     map[string]string{"DEPLOY_BRANCH": "-x"},
			wantErr: []string{`DEPLOY_BRANCH: branch name "-x" starts with '-'`},
		},
		{
			name:    "unreadable key",
			env:     map[string]string{"DEPLOY_SSH_KEY": "/nonexistent/id"},
			wantErr: []string{"DEPLOY_SSH_KEY: cannot read /nonexistent/id: no such file or directory"},
		},
		{
			name: "malformed key",
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.key, "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n", 0o600)
			},
			wantErr: []string{"is not a private key"},
		},
		{
			name: "public key instead of private",
			prepare: func(t *testing.T, f fixture) {
				t.Setenv("DEPLOY_SSH_KEY", writePublicKey(t, f.dir, "id.pub"))
			},
			wantErr: []string{"id.pub is a public key; name the private key file"},
		},
		{
			name: "encrypted key without passphrase",
			prepare: func(t *testing.T, f fixture) {
				writeKey(t, f.dir, "id_ed25519", "pw")
			},
			wantErr: []string{"id_ed25519 is encrypted: set DEPLOY_SSH_KEY_PASSPHRASE"},
		},
		{
			name: "encrypted key with wrong passphrase",
			env:  map[string]string{"DEPLOY_SSH_KEY_PASSPHRASE": "nope"},
			prepare: func(t *testing.T, f fixture) {
				writeKey(t, f.dir, "id_ed25519", "pw")
			},
			wantErr: []string{"DEPLOY_SSH_KEY_PASSPHRASE: wrong passphrase for "},
		},
		{
			name: "encrypted key with passphrase",
			env:  map[string]string{"DEPLOY_SSH_KEY_PASSPHRASE": "pw"},
			prepare: func(t *testing.T, f fixture) {
				writeKey(t, f.dir, "id_ed25519", "pw")
			},
		},
		{
			// The key is used as it is (sshkeys.Parse); the warning says the
			// file is not what the passphrase suggests.
			name: "passphrase for a key that is not encrypted",
			env:  map[string]string{"DEPLOY_SSH_KEY_PASSPHRASE": "pw-xyz"},
			check: func(t *testing.T, c *Config) {
				if len(c.SSHKeyPEM) == 0 {
					t.Error("got no key, want the key used as it is")
				}
			},
			wantWarnings: []string{"DEPLOY_SSH_KEY: ", " is not encrypted, so DEPLOY_SSH_KEY_PASSPHRASE is not used (the key is used as it is); " +
				"to protect the key, encrypt it with ssh-keygen -p -f "},
		},
		{
			name: "git key passphrase for a key that is not encrypted",
			env:  map[string]string{"DEPLOY_GIT_KEY": "~/git_key", "DEPLOY_GIT_KEY_PASSPHRASE": "pw-xyz"},
			prepare: func(t *testing.T, f fixture) {
				writeKey(t, f.dir, "git_key", "")
			},
			wantWarnings: []string{"DEPLOY_GIT_KEY: ", "git_key is not encrypted, so DEPLOY_GIT_KEY_PASSPHRASE is not used"},
		},
		{
			name: "key readable by others",
			prepare: func(t *testing.T, f fixture) {
				os.Chmod(f.key, 0o644)
			},
			wantWarnings: []string{"DEPLOY_SSH_KEY: other users can read ", "(mode 0644); run chmod 600"},
		},
		{
			name: "git key encrypted",
			env:  map[string]string{"DEPLOY_GIT_KEY": "~/git_key"},
			prepare: func(t *testing.T, f fixture) {
				writeKey(t, f.dir, "git_key", "pw")
			},
			wantErr: []string{"git_key is encrypted: set DEPLOY_GIT_KEY_PASSPHRASE"},
		},
		{
			name: "git key with passphrase, ~ expanded",
			env:  map[string]string{"DEPLOY_GIT_KEY": "~/git_key", "DEPLOY_GIT_KEY_PASSPHRASE": "pw"},
			prepare: func(t *testing.T, f fixture) {
				writeKey(t, f.dir, "git_key", "pw")
			},
			check: func(t *testing.T, c *Config) {
				if c.GitKey != filepath.Join(os.Getenv("HOME"), "git_key") || len(c.GitKeyPEM) == 0 {
					t.Errorf("got GitKey %q with %d bytes, want $HOME/git_key and its content", c.GitKey, len(c.GitKeyPEM))
				}
			},
		},
		{
			name:    "known_hosts missing",
			env:     map[string]string{"DEPLOY_KNOWN_HOSTS": "~/.ssh/known_hosts"},
			wantErr: []string{"/.ssh/known_hosts does not exist;", "ssh-keyscan -p 22 web1 >> "},
		},
		{
			name: "known_hosts missing, local first",
			env:  map[string]string{"DEPLOY_KNOWN_HOSTS": "~/.ssh/known_hosts"},
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.hostsFile, "local\nweb2:2222\n", 0o644)
			},
			wantErr: []string{"/.ssh/known_hosts does not exist;", "ssh-keyscan -p 2222 web2 >> "},
		},
		{
			name: "known_hosts malformed",
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.knownHosts, "web1 ssh-ed25519 notbase64!!\n", 0o644)
			},
			wantErr: []string{"DEPLOY_KNOWN_HOSTS: cannot use "},
		},
		{
			name: "a pool of only local needs no ssh key",
			env:  map[string]string{"DEPLOY_SSH_KEY": ""},
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.hostsFile, "local\n", 0o644)
			},
			check: func(t *testing.T, c *Config) {
				if len(c.Hosts) != 1 || !c.Hosts[0].Local || c.SSHKeyPEM != nil {
					t.Errorf("hosts %+v, key %d bytes", c.Hosts, len(c.SSHKeyPEM))
				}
			},
		},
		{
			name: "local with SSH hosts needs DEPLOY_LOCAL_USER",
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.hostsFile, "web1\nlocal\n", 0o644)
			},
			wantErr: []string{"DEPLOY_HOSTS_FILE: " + "hosts.txt lists local together with SSH hosts, but the repository code local runs (hooks, pip, DEPLOY_RESTART_CMD) " +
				"would run as the user pushdeploy runs as, which can read DEPLOY_SSH_KEY, the key to the other hosts; " +
				"set DEPLOY_LOCAL_USER to the user local's commands run as, or list this machine as an SSH host (e.g. deploy@localhost)"},
		},
		{
			name: "local with SSH hosts and DEPLOY_LOCAL_USER",
			env:  map[string]string{"DEPLOY_LOCAL_USER": "nobody"},
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.hostsFile, "web1\nlocal\n", 0o644)
			},
			check: func(t *testing.T, c *Config) {
				if c.LocalUser != "nobody" || len(c.Hosts) != 2 || !c.Hosts[1].Local {
					t.Errorf("LocalUser %q, hosts %+v", c.LocalUser, c.Hosts)
				}
			},
		},
		{
			name:    "DEPLOY_LOCAL_USER root",
			env:     map[string]string{"DEPLOY_LOCAL_USER": "root"},
			wantErr: []string{"DEPLOY_LOCAL_USER: user root is root: the local host's commands would keep every privilege; name a user without any"},
		},
		{
			name:    "DEPLOY_LOCAL_USER unknown",
			env:     map[string]string{"DEPLOY_LOCAL_USER": "pd-no-such-user"},
			wantErr: []string{`DEPLOY_LOCAL_USER: no user "pd-no-such-user" on this machine; create it`},
		},
		{
			name:         "DEPLOY_LOCAL_USER without local",
			env:          map[string]string{"DEPLOY_LOCAL_USER": "nobody"},
			wantWarnings: []string{"DEPLOY_LOCAL_USER is set, but " + "hosts.txt has no local line: it is not used"},
		},
		{
			name: "hosts file errors name file and line",
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.hostsFile, "web1\n::1\nweb1:70000\nweb_2\n", 0o644)
			},
			wantErr: []string{
				`hosts.txt:2: "::1": write IPv6 addresses in brackets: [::1]`,
				`hosts.txt:3: "web1:70000": port "70000" is not a number from 1 to 65535`,
				`hosts.txt:4: "web_2": "web_2" is not a valid host name`,
			},
		},
		{
			name:    "hosts file missing",
			env:     map[string]string{"DEPLOY_HOSTS_FILE": "pool.txt"},
			wantErr: []string{"DEPLOY_HOSTS_FILE: cannot read pool.txt: no such file or directory"},
		},
		{
			name: "hosts file without hosts",
			prepare: func(t *testing.T, f fixture) {
				writeFile(t, f.hostsFile, "# nothing yet\n\n", 0o644)
			},
			wantErr: []string{"DEPLOY_HOSTS_FILE: hosts.txt lists no hosts"},
		},
		{
			name: "later features' variables",
			env: map[string]string{
				"DEPLOY_PARALLEL": "3", "DEPLOY_VENV_REUSE": "false", "DEPLOY_KEEP_RELEASES": "5",
				"DEPLOY_FETCH": "push", "DEPLOY_WEBHOOK_ALLOW_CIDRS": "10.0.0.0/8, 2001:db8::/32,",
				"DEPLOY_TRUSTED_PROXIES": "127.0.0.1/32", "DEPLOY_RATE_LIMIT": "0", "DEPLOY_RATE_BURST": "7",
				"DEPLOY_RESTART_BATCH": "25%",
			},
			check: func(t *testing.T, c *Config) {
				if c.Parallel != 3 || c.VenvReuse || c.Fetch != "push" || c.RestartBatch != "25%" {
					t.Errorf("got Parallel %d, VenvReuse %v, Fetch %q, RestartBatch %q; want 3, false, push, 25%%", c.Parallel, c.VenvReuse, c.Fetch, c.RestartBatch)
				}
				if !slices.Equal(c.WebhookAllowCIDRs, []string{"10.0.0.0/8", "2001:db8::/32"}) || !slices.Equal(c.TrustedProxies, []string{"127.0.0.1/32"}) ||
					c.RateLimit != 0 || c.RateBurst != 7 {
					t.Errorf("got allow %q, proxies %q, rate %d/%d", c.WebhookAllowCIDRs, c.TrustedProxies, c.RateLimit, c.RateBurst)
				}
			},
		},
		{
			name: "every validation problem at once",
			env: map[string]string{
				"DEPLOY_BRANCH":              "a b",
				"DEPLOY_ROOT":                "/srv/../etc",
				"DEPLOY_FETCH":               "rsync",
				"DEPLOY_ROLLBACK_ON_FAILURE": "none",
				"DEPLOY_PARALLEL":            "0",
				"DEPLOY_RESTART_BATCH":       "101%",
				"DEPLOY_STEP_TIMEOUT":        "0s",
				"DEPLOY_HEALTH_URL":          "ftp://x/",
				"DEPLOY_WEBHOOK_ALLOW_CIDRS": "10.0.0.0/8,10.1.2.3",
				"DEPLOY_SHARED_PATHS":        "/etc/passwd",
				"DEPLOY_SSH_USER":            "9lives",
				"DEPLOY_TRUSTED_PROXIES":     "::1",
				"DEPLOY_RATE_LIMIT":          "-1",
				"DEPLOY_RATE_BURST":          "0",
				"DEPLOY_WEBHOOK_MAX_BODY":    "100",
			},
			wantErr: []string{
				`DEPLOY_BRANCH: branch name "a b" contains ' '`,
				`DEPLOY_ROOT: path "/srv/../etc" contains '..'`,
				`DEPLOY_FETCH: "rsync" is neither clone nor push`,
				`DEPLOY_ROLLBACK_ON_FAILURE: "none" is neither host nor all`,
				`DEPLOY_PARALLEL: 0 is less than 1`,
				`DEPLOY_RESTART_BATCH: "101%" is neither a number of hosts (1 or more) nor a share of the pool (1% to 100%); set how many hosts restart at once, e.g. 2, or 25% of the pool`,
				`DEPLOY_STEP_TIMEOUT: 0s is not a positive duration`,
				`DEPLOY_HEALTH_URL: "ftp://x/" is not an http:// or https:// URL`,
				`DEPLOY_WEBHOOK_ALLOW_CIDRS: "10.1.2.3" is not a network in CIDR form`,
				`for one address write 10.1.2.3/32`,
				`DEPLOY_SHARED_PATHS: "/etc/passwd" must be a path relative to the release folder`,
				`DEPLOY_SSH_USER: user "9lives" is not a valid login name`,
				`DEPLOY_TRUSTED_PROXIES: "::1" is not a network in CIDR form`,
				`for one address write ::1/128`,
				`DEPLOY_RATE_LIMIT: -1 is negative`,
				`DEPLOY_RATE_BURST: 0 is less than 1`,
				`DEPLOY_WEBHOOK_MAX_BODY: 100 bytes is not from 1024 (1 KiB) to 33554432 (32 MiB)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			for k, v := range tt.env {
				if v == "" {
					os.Unsetenv(k) // restored by cleanEnv's t.Setenv
				} else {
					t.Setenv(k, v)
				}
			}
			if tt.envFile != "" {
				mode := tt.fileMode
				if mode == 0 {
					mode = 0o600
				}
				writeFile(t, filepath.Join(f.dir, "deploy.env"), tt.envFile, mode)
			}
			if tt.prepare != nil {
				tt.prepare(t, f)
			}
			c, warnings, err := Load("", false)
			if len(tt.wantErr) > 0 {
				wantProblems(t, err, tt.wantErr...)
				if c != nil {
					t.Errorf("got a Config with the error, want nil")
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			wantWarnings(t, warnings, tt.wantWarnings...)
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestLoadEnvFile(t *testing.T) {
	t.Run("explicit file must exist", func(t *testing.T) {
		setup(t)
		_, _, err := Load("prod.env", true)
		wantProblems(t, err, "--env-file prod.env: cannot read it: no such file or directory")
	})
	t.Run("explicit file is read", func(t *testing.T) {
		f := setup(t)
		writeFile(t, filepath.Join(f.dir, "prod.env"), "DEPLOY_APP_THREADS=4\n", 0o600)
		writeFile(t, filepath.Join(f.dir, "deploy.env"), "DEPLOY_APP_THREADS=8\n", 0o600)
		c, _, err := Load("prod.env", true)
		if err != nil {
			t.Fatal(err)
		}
		if c.AppThreads != 4 {
			t.Errorf("got AppThreads %d, want 4 from prod.env", c.AppThreads)
		}
	})
	t.Run("default file is optional", func(t *testing.T) {
		setup(t)
		if _, _, err := Load(DefaultEnvFile, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("copy of deploy.env.example", func(t *testing.T) {
		example, err := os.ReadFile(exampleFile)
		if err != nil {
			t.Fatal(err)
		}
		f := setup(t)
		writeFile(t, filepath.Join(f.dir, "deploy.env"), string(example), 0o600)
		_, warnings, err := Load("", false)
		if err != nil {
			t.Fatal(err)
		}
		wantWarnings(t, warnings)
	})
	t.Run("malformed file", func(t *testing.T) {
		f := setup(t)
		writeFile(t, filepath.Join(f.dir, "deploy.env"), "DEPLOY_BRANCH='unterminated\n", 0o600)
		_, _, err := Load("", false)
		wantProblems(t, err, "deploy.env:1: unterminated quoted value")
	})
}

// TestEnvFileProblem: a malformed env file is named with the line at fault,
// and the message quotes nothing from it (a value may be a secret).
func TestEnvFileProblem(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"unterminated", "DEPLOY_BRANCH=main\nDEPLOY_WEBHOOK_SECRET='s3cret\nDEPLOY_PARALLEL=2\n", "deploy.env:2: unterminated quoted value"},
		{"multi-line value then junk", "DEPLOY_RESTART_CMD=\"a\nb\" s3cret\n", "deploy.env:2: not a VARIABLE=value line"},
		{"no =", "# c\n\nDEPLOY_BRANCH=x\ns3cret\n", "deploy.env:4: not a VARIABLE=value line"},
		{"bad name", "DEPLOY_BRANCH=x\r\nDEPLOY-ROOT=s3cret\r\n", "deploy.env:2: not a VARIABLE=value line"},
		{"junk after quotes", "DEPLOY_BRANCH='main' s3cret\n", "deploy.env:1: not a VARIABLE=value line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			writeFile(t, filepath.Join(f.dir, "deploy.env"), tt.content, 0o600)
			_, _, err := Load("", false)
			wantProblems(t, err, tt.want)
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the message quotes the file: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	setup(t)
	base, _, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // every problem, in order
	}{
		{"valid", func(c *Config) {}, nil},
		{"repo url like an option", func(c *Config) { c.RepoURL = "--upload-pack=evil" }, []string{
			`DEPLOY_REPO_URL: "--upload-pack=evil": starts with '-', which git refuses; for a local path write ./--upload-pack=evil`,
		}},
		{"repo url git reads otherwise", func(c *Config) { c.RepoURL = "git@git.example.com:2222:team/app.git" }, []string{
			`DEPLOY_REPO_URL: "git@git.example.com:2222:team/app.git": scp-like URLs take no port: git would ask git@git.example.com for the path "2222:team/app.git"; for port 2222 write [git@git.example.com:2222]:team/app.git`,
		}},
		{"repo url password shown blanked out", func(c *Config) { c.RepoURL = "ssh://deployer:s3cret@git.example.com/app.git" }, []string{
			`DEPLOY_REPO_URL: "ssh://deployer:xxxxx@git.example.com/app.git": an SSH URL takes no password (ssh would log in as a user whose name has a ':'); the deploy key (DEPLOY_GIT_KEY) logs in`,
		}},
		{"relative local path in clone mode", func(c *Config) { c.RepoURL = "~/app.git" }, []string{
			`DEPLOY_REPO_URL: "~/app.git" is a relative local path: the deployer reads it from its own folder (or home), but each host from its own; write an absolute path, or set DEPLOY_FETCH=push`,
		}},
		{"relative local path in push mode", func(c *Config) { c.RepoURL = "repos/app.git"; c.Fetch = "push" }, nil},
		{"repo url with a control character", func(c *Config) { c.RepoURL = "https://deployer:s3cret@git.example.com/app.git\n" }, []string{
			`DEPLOY_REPO_URL: "https://deployer:xxxxx@git.example.com/app.git\n": contains a control character`,
		}},
		{"empty python, bad listen", func(c *Config) { c.Python = ""; c.Listen = "8080" }, []string{
			"DEPLOY_PYTHON is empty; set the interpreter on the hosts, e.g. python3 or /opt/python3.12/bin/python3",
			`DEPLOY_LISTEN: "8080" is not host:port (examples: :8080, 127.0.0.1:8080, [::1]:8080)`,
		}},
		{"numbers and durations", func(c *Config) {
			c.AppProcesses, c.AppThreads, c.KeepReleases = 0, -1, 0
			c.ConnectTimeout, c.LockTimeout = 0, -time.Second
		}, []string{
			"DEPLOY_APP_PROCESSES: 0 is less than 1",
			"DEPLOY_APP_THREADS: -1 is less than 1",
			"DEPLOY_KEEP_RELEASES: 0 is less than 1",
			"DEPLOY_CONNECT_TIMEOUT: 0s is not a positive duration (examples: 90s, 10m)",
			"DEPLOY_LOCK_TIMEOUT: -1s is not a positive duration (examples: 90s, 10m)",
		}},
		{"urls", func(c *Config) { c.HealthURL = "http://{host}:8000/health"; c.NotifyURL = "hooks.slack.com/x" }, []string{
			`DEPLOY_NOTIFY_URL: "hooks.slack.com/x" is not an http:// or https:// URL`,
		}},
		{"shared paths", func(c *Config) { c.SharedPaths = []string{"media", "logs/", "./x", "a/../b", "~/x", ".", "x//"} }, []string{
			`DEPLOY_SHARED_PATHS: "./x" must be a path relative to the release folder, in clean form (e.g. media, logs/ or config/local.py)`,
			`DEPLOY_SHARED_PATHS: path "a/../b" contains '..'`,
			`DEPLOY_SHARED_PATHS: path "~/x" starts with '~', which is not expanded on the hosts; a relative path is already relative to the login user's home`,
			`DEPLOY_SHARED_PATHS: "." must be a path relative to the release folder, in clean form (e.g. media, logs/ or config/local.py)`,
			`DEPLOY_SHARED_PATHS: "x//" must be a path relative to the release folder, in clean form (e.g. media, logs/ or config/local.py)`,
		}},
		{"cidrs", func(c *Config) { c.WebhookAllowCIDRs = []string{"10.0.0.0/8", "2001:db8::1", "nope"} }, []string{
			`DEPLOY_WEBHOOK_ALLOW_CIDRS: "2001:db8::1" is not a network in CIDR form (e.g. 10.0.0.0/8, 2001:db8::/32); for one address write 2001:db8::1/128`,
			`DEPLOY_WEBHOOK_ALLOW_CIDRS: "nope" is not a network in CIDR form (e.g. 10.0.0.0/8, 2001:db8::/32)`,
		}},
		{"required paths empty", func(c *Config) { c.SSHKey = ""; c.KnownHosts = ""; c.DataDir = "" }, []string{
			`DEPLOY_DATA_DIR: "" is not a folder name; set where the deployer keeps its state, e.g. ./data`,
			"DEPLOY_SSH_KEY is required: the admin private key (a file) that logs into the hosts (only a pool of `local` hosts needs none)",
			"DEPLOY_KNOWN_HOSTS is empty; set the known_hosts file, e.g. ~/.ssh/known_hosts",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *base
			c.SSHKeyPEM, c.Hosts = nil, nil
			tt.change(&c)
			_, err := c.Validate()
			var got []string
			if err != nil {
				wantProblems(t, err)
				got = err.(*Error).Problems
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate problems (-want +got):\n%s", diff)
			}
			if err == nil && (len(c.SSHKeyPEM) == 0 || len(c.Hosts) != 2) {
				t.Errorf("Validate did not fill SSHKeyPEM and Hosts: %d bytes, %d hosts", len(c.SSHKeyPEM), len(c.Hosts))
			}
		})
	}
}

func TestUnknownVariable(t *testing.T) {
	tests := []struct{ key, want string }{
		{typoBranch, "DEPLOY_BRNACH is not a pushdeploy variable; did you mean DEPLOY_BRANCH?"},
		{typoSSHKey, "DEPLOY_SSHKEY is not a pushdeploy variable; did you mean DEPLOY_SSH_KEY?"},
		{"BRANCH", "BRANCH is not a pushdeploy variable; did you mean DEPLOY_BRANCH?"},
		{typoX, "DEPLOY_X is not a pushdeploy variable (see deploy.env.example for the list)"},
	}
	for _, tt := range tests {
		if got := unknownVariable(tt.key); got != tt.want {
			t.Errorf("unknownVariable(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestVariables checks that the variables Load checks are those envconfig
// reads, and that every default parses.
func TestVariables(t *testing.T) {
	var b strings.Builder
	if err := envconfig.Usagef(Prefix, &Config{}, &b, "{{range .}}{{usage_key .}}\n{{end}}"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range variables {
		got = append(got, v.key)
		if v.def != "" {
			if msg := valueProblem(v.typ, v.def); msg != "" {
				t.Errorf("%s: bad default: %s", v.key, msg)
			}
		}
		if v.desc == "" {
			t.Errorf("%s has no desc tag", v.key)
		}
		if v.required && v.def != "" {
			t.Errorf("%s is required and has a default", v.key)
		}
	}
	want := strings.Fields(b.String())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("variables differ from envconfig's (-want +got):\n%s", diff)
	}
}

// TestLocalUserProblem: the local host's commands run as another user only
// through a real privilege drop, which needs root.
func TestLocalUserProblem(t *testing.T) {
	tests := []struct {
		name string
		euid int
		want string
	}{
		{"nobody", 0, ""},
		{"nobody", 65534, "user nobody is the user pushdeploy runs as: its commands could read everything pushdeploy can; name another user"},
		{"nobody", 1000, "running the local host's commands as nobody needs pushdeploy to run as root (it is uid 1000)"},
		{"root", 0, "user root is root: the local host's commands would keep every privilege; name a user without any"},
		{"a\nb", 0, "the user name contains a control character"},
	}
	for _, tt := range tests {
		if got := localUserProblem(tt.name, tt.euid); got != tt.want {
			t.Errorf("localUserProblem(%q, %d) = %q, want %q", tt.name, tt.euid, got, tt.want)
		}
	}
}
