package config

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidateSeveral(t *testing.T) {
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
		{"database url", func(c *Config) {
			c.DatabaseURL = "postgres://deployer:pw@db.internal:5432/pushdeploy?sslmode=verify-full"
		}, nil},
		{"database url postgresql, socket", func(c *Config) { c.DatabaseURL = "postgresql:///pushdeploy?host=/var/run/postgresql" }, nil},
		{"database url, another scheme", func(c *Config) { c.DatabaseURL = "mysql://deployer:s3cret@db/x" }, []string{
			`DEPLOY_DATABASE_URL: "mysql://deployer:xxxxx@db/x" is not a postgres:// or postgresql:// URL; write postgres://USER:PASSWORD@HOST:5432/DB (characters such as @ : / ? # in the user or password %-encoded, e.g. %40 for @)`,
		}},
		{"database url, a key=value string", func(c *Config) { c.DatabaseURL = "host=db user=deployer password=s3cret" }, []string{
			`DEPLOY_DATABASE_URL: "xxxxx" is not a postgres:// or postgresql:// URL`,
		}},
		{"database url, unencoded / in the password", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3/cret@db:5432/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx@db:5432/x" is not a valid URL; write postgres://USER:PASSWORD@HOST:5432/DB`,
		}},
		{"database url, no host", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret@/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx@/x" names no host; write postgres://USER:PASSWORD@HOST:5432/DB`,
		}},
		{"database url, bad port", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret@db:70000/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx@db:70000/x" port "70000" is not a number from 1 to 65535`,
		}},
		{"database url, password in the query", func(c *Config) { c.DatabaseURL = "postgres://db:0/x?user=u&password=s3cret" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://db:0/x?password=xxxxx&user=u" port "0" is not a number from 1 to 65535`,
		}},
		{"database url, two ports", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret@db:5432:5432/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx@db:5432:5432/x" names a host with more than one ':'; write postgres://USER:PASSWORD@HOST:5432/DB`,
		}},
		{"database url, no @ before the host", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret:5432/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx/x" names a host with more than one ':'`,
		}},
		{"database url, several hosts", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret@db1:5432,db2:5433/x" }, nil},
		{"database url, a bad port among several hosts", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret@db1:99999,db2:5433/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx@db1:99999,db2:5433/x" port "99999" is not a number from 1 to 65535`,
		}},
		{"database url, USER:PASSWORD without @ among several hosts", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret,db2:5433/x" }, []string{
			`DEPLOY_DATABASE_URL: "postgres://deployer:xxxxx/x" names a port that is not a number; write postgres://USER:PASSWORD@HOST:5432/DB`,
		}},
		{"database url, IPv6 host", func(c *Config) { c.DatabaseURL = "postgres://deployer:s3cret@[2001:db8::5]:5432/x" }, nil},
		{"poll interval", func(c *Config) { c.PollInterval = time.Minute }, nil},
		{"poll interval 1s", func(c *Config) { c.PollInterval = time.Second }, nil},
		{"poll interval too short", func(c *Config) { c.PollInterval = 500 * time.Millisecond }, []string{
			"DEPLOY_POLL_INTERVAL: 500ms is less than the minimum, 1s; set e.g. 1m, or 0 for never",
		}},
		{"poll interval negative", func(c *Config) { c.PollInterval = -time.Minute }, []string{
			"DEPLOY_POLL_INTERVAL: -1m0s is negative; set how often to look at the branch, e.g. 5m, or 0 for never",
		}},
		{"node name", func(c *Config) { c.NodeName = "deploy-1.eu (primary)" }, nil},
		{"node name too long", func(c *Config) { c.NodeName = strings.Repeat("n", 65) }, []string{
			"DEPLOY_NODE_NAME: 65 characters is longer than 64; name this deployer in a few printable characters, e.g. deploy1, or leave it empty for HOSTNAME:PID",
		}},
		{"node name with a control character", func(c *Config) { c.NodeName = "a\tb" }, []string{
			`DEPLOY_NODE_NAME: "a\tb" contains a character that is not printable; name this deployer`,
		}},
		{"node name with blanks around", func(c *Config) { c.NodeName = " a" }, []string{
			`DEPLOY_NODE_NAME: " a" starts or ends with white space; name this deployer`,
		}},
		{"promote from without apps", func(c *Config) { c.PromoteFrom = "staging" }, []string{
			"DEPLOY_PROMOTE_FROM is set, but there is one app only (DEPLOY_APPS_DIR is empty): an app promotes from another app of DEPLOY_APPS_DIR; unset it, or set DEPLOY_APPS_DIR (docs/apps.md)",
		}},
		{"apps dir with a control character", func(c *Config) { c.AppsDir = "apps\n" }, []string{
			`DEPLOY_APPS_DIR: "apps\n" contains a control character; name the folder of app files, e.g. /etc/pushdeploy/apps`,
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
			for i := range tt.want {
				if i < len(got) && strings.HasPrefix(got[i], tt.want[i]) {
					got[i] = tt.want[i] // the wanted start is enough
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate problems (-want +got):\n%s", diff)
			}
			if strings.Contains(strings.Join(got, "\n"), "s3") {
				t.Errorf("a problem shows the password: %q", got)
			}
		})
	}
}

// TestRedactDatabaseURL: the password never shows, valid URL or not.
func TestRedactDatabaseURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:s3cret@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u@db/x", "postgres://u@db/x"},
		{"postgres://db/x?sslmode=require", "postgres://db/x?sslmode=require"},
		{"postgres://u:s3c@ret@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u:s3/cret@db:5432/x", "postgres://u:xxxxx@db:5432/x"},
		{"postgres://u:s3cret@db/x?password=s3cret2&sslpassword=s3cret3", "postgres://u:xxxxx@db/x?password=xxxxx"},
		{"postgres://db/x?password=s3;cret", "postgres://db/x?password=xxxxx"},
		{"postgres://db/x?a=1;b=2", "postgres://db/x?xxxxx"},
		{"postgres://u:@s3cret@db/x?sslpassword=@s3cret", "postgres://u:xxxxx@db/x?sslpassword=xxxxx"},
		{"postgres://u:s3%zzcret@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u:s3cret@db/x?a=b%zz", "postgres://u:xxxxx@db/x?xxxxx"},
		{"user=u password=s3cret", "xxxxx"},
		{"postgres://u:s3cret@db/x#frag?password=s3cret", "postgres://u:xxxxx@db/x#xxxxx"},
		{"postgres://0:s3cret@#/db?sslpassword=s3cret", "postgres://0:xxxxx@#xxxxx"},
		{"postgres:///:s3cret@0/db", "postgres:///:xxxxx@0/db"},
		{"postgres://u:s3?cret@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u:s3cret/db", "postgres://u:xxxxx/db"},
		{"postgres://u:s3cret@[::1]:5432/db?sslmode=require", "postgres://u:xxxxx@[::1]:5432/db?sslmode=require"},
		{"postgres:u:s3cret@db", "xxxxx"},
		{"postgres://db:5432", "postgres://db:5432"},
	}
	for _, tt := range tests {
		got := RedactDatabaseURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactDatabaseURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("RedactDatabaseURL(%q) = %q shows the password", tt.in, got)
		}
	}
}

// FuzzDatabaseURL: whatever DEPLOY_DATABASE_URL holds, the problem about
// it never shows the password, written raw (with '@', '/', '?', '%' in
// it), %-encoded, or in a password= parameter.
func FuzzDatabaseURL(f *testing.F) {
	for _, s := range [][3]string{
		{"deployer", "s3cret", "db:5432"}, {"u", "p@ss/w?rd#x", "db"}, {"u", "pa%zzss", "db"}, {"", "s3cret", ""},
		{"u:v", "s3cret", "[::1]:5432"}, {"u", "s3cret;x", "db:70000"}, {"u", "s3 cret", "db"},
	} {
		f.Add(s[0], s[1], s[2], 0)
	}
	f.Fuzz(func(t *testing.T, user, password, host string, form int) {
		if len(password) < 4 {
			return // too short to tell apart from the rest
		}
		var s string
		switch form % 4 {
		case 0:
			s = "postgres://" + user + ":" + password + "@" + host + "/db"
		case 1:
			s = "postgresql://" + url.UserPassword(user, password).String() + "@" + host + "/db?sslmode=require"
		case 2:
			s = "postgres://" + host + "/db?password=" + url.QueryEscape(password)
		default:
			s = "postgres://" + user + ":" + password + "@" + host + "/db?sslpassword=" + password
		}
		shown := RedactDatabaseURL(s)
		// What the rest of s holds (the user, the host) may show.
		rest := "postgres://" + user + ":xxxxx@" + host + "/db?sslmode=require&password=xxxxx"
		rest += url.QueryEscape(rest) + url.PathEscape(rest)
		for _, secret := range []string{password, url.QueryEscape(password), url.PathEscape(password), url.UserPassword("", password).String()[1:]} {
			if len(secret) >= 4 && strings.Contains(shown, secret) && !strings.Contains(rest, secret) {
				t.Fatalf("RedactDatabaseURL(%q) = %q shows the password %q", s, shown, secret)
			}
		}
	})
}
