package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// fileLineRE matches a problem that starts with file:line.
var fileLineRE = regexp.MustCompile(`^[^\n]+:[0-9]+: `)

// FuzzEnvFile loads arbitrary env files (the literal env file reader, then
// every check of Load and Validate) on top of a valid environment: Load
// must not panic, must leave the process environment as it was, and every
// problem it reports must name what is at fault: a DEPLOY_ variable, or
// the env file or hosts file with the line.
func FuzzEnvFile(f *testing.F) {
	for _, s := range []string{
		"", "DEPLOY_BRANCH=main\n", "# comment\nDEPLOY_PARALLEL=4\nexport DEPLOY_APP_THREADS=8\n",
		"DEPLOY_BRANCH='unterminated\n", `DEPLOY_BRANCH="a\nb"`, "DEPLOY_BRANCH=$(touch x)\n", "DEPLOY_BRANCH=`id`\n",
		"DEPLOY_BRANCH=../release\n", "DEPLOY_BRANCH=-x\n", "DEPLOY_BRANCH=rel ease\n", "DEPLOY_BRANCH=\"rel\\u0000ease\"\n",
		"DEPLOY_BRANCHH=x\nDEPLOY_PARALLEL=abc\n", "DEPLOY_STEP_TIMEOUT=10\n", "DEPLOY_VENV_REUSE=maybe\n", "DEPLOY_PARALLEL=0x10\n",
		"DEPLOY_PARALLEL=99999999999999999999\n", "DEPLOY_ROOT=../../etc\n", "DEPLOY_ROOT=~/app\n", "DEPLOY_HOSTS_FILE=/nonexistent\n",
		"DEPLOY_SHARED_PATHS=.env,../x,/abs,a//b\n", "DEPLOY_WEBHOOK_ALLOW_CIDRS=10.0.0.1,nope\n", "DEPLOY_HEALTH_URL=ftp://x\n",
		"DEPLOY_LISTEN=8080\n", "PATH=/evil\n", "deploy_branch=x\n", "DEPLOY_BRANCH: main\n", "=x\n", "DEPLOY_BRANCH\n",
		"DEPLOY_BRANCH=${HOME}\n", "DEPLOY_BRANCH=\"${DEPLOY_ROOT}\"\n", "\xff=\xfe\n", "DEPLOY_BRANCH='a'b'\n", "export\n",
		"DEPLOY_BRANCH=main # comment\n", "DEPLOY_BRANCH=\"main\" junk\n",
		"DEPLOY_RESTART_CMD=$HOME/bin/app-restart $HOME/app\n", "DEPLOY_RESTART_CMD='a\\'b'\n", "DEPLOY_RESTART_CMD=\"a\\\\\"\n",
		"DEPLOY_API_TOKEN=t\rDEPLOY_BRANCH=x\n", "export  DEPLOY_BRANCH = \"x\" # c\n", "DEPLOY_FETCH=pull\nDEPLOY_ROLLBACK_ON_FAILURE=none\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	hosts := filepath.Join(dir, "hosts.txt")
	for p, content := range map[string]string{key: string(pem.EncodeToMemory(block)), known: "", hosts: "web1\nops@web2:2222\n"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, content string) {
		cleanEnv(t)
		t.Setenv("HOME", dir)
		t.Setenv("DEPLOY_REPO_URL", "git@bitbucket.org:team/app.git")
		t.Setenv("DEPLOY_SSH_KEY", key)
		t.Setenv("DEPLOY_KNOWN_HOSTS", known)
		t.Setenv("DEPLOY_HOSTS_FILE", hosts)
		t.Setenv("DEPLOY_DATA_DIR", filepath.Join(dir, "data"))
		file := filepath.Join(t.TempDir(), "fuzz.env")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		before := os.Environ()
		c, _, err := Load(file, true)
		if after := os.Environ(); !slices.Equal(before, after) {
			t.Fatalf("Load(%q) changed the environment", content)
		}
		if err == nil {
			if c == nil || len(c.Hosts) == 0 {
				t.Fatalf("Load(%q): no error but config %+v", content, c)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("Load(%q): got %T %v, want a *config.Error with problems", content, err, err)
		}
		for _, p := range ce.Problems {
			named := strings.HasPrefix(p, Prefix+"_") || fileLineRE.MatchString(p) ||
				strings.HasPrefix(p, "--env-file ")
			if !named {
				t.Errorf("Load(%q): problem %q names neither a variable nor a file:line", content, p)
			}
		}
	})
}
