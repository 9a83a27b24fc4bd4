package config

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite ../deploy.env.example from Usage")

const exampleFile = "../deploy.env.example"

// TestExampleFile keeps deploy.env.example in step with Config: the file is
// the output of Usage.
func TestExampleFile(t *testing.T) {
	var b bytes.Buffer
	if err := Usage(&b); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(exampleFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.String(), string(got)); diff != "" {
		t.Errorf("deploy.env.example is out of date (-Usage +file); run go test ./config -run TestExampleFile -update:\n%s", diff)
	}
}

// TestExampleFileVariables checks what the file says, whatever produced it:
// every variable is there once, every DEPLOY_ name in it is a variable, and
// the values it sets are the defaults.
func TestExampleFileVariables(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`DEPLOY_[A-Z0-9_]+`).FindAllString(string(data), -1) {
		if _, ok := lookupVariable(name); !ok {
			t.Errorf("deploy.env.example names %s, which is not a variable", name)
		}
	}
	assigned := make(map[string]int)
	for _, line := range strings.Split(string(data), "\n") {
		if m := regexp.MustCompile(`^(?:# )?(DEPLOY_[A-Z0-9_]+)=`).FindStringSubmatch(line); m != nil {
			assigned[m[1]]++
		}
	}
	entries, bad := parseEnvFile(data)
	if bad != nil {
		t.Fatal(bad.problem(exampleFile))
	}
	set := make(map[string]string)
	for _, e := range entries {
		set[e.key] = e.value
	}
	for _, v := range variables {
		if assigned[v.key] != 1 {
			t.Errorf("deploy.env.example has %d lines DEPLOY_X= (or # DEPLOY_X=) for %s, want 1", assigned[v.key], v.key)
		}
		value, ok := set[v.key]
		switch {
		case v.def == "" && ok:
			t.Errorf("deploy.env.example sets %s=%q, want it commented out (no default)", v.key, value)
		case v.def != "" && !ok:
			t.Errorf("deploy.env.example does not set %s to its default %q", v.key, v.def)
		case ok && value != v.def:
			t.Errorf("deploy.env.example sets %s=%q, want the default %q", v.key, value, v.def)
		}
	}
	for key := range set {
		if _, ok := lookupVariable(key); !ok {
			t.Errorf("deploy.env.example sets %s, which is not a variable", key)
		}
	}
}

// TestDocsVariables checks that docs/configuration.md describes every variable.
func TestDocsVariables(t *testing.T) {
	data, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variables {
		if !strings.Contains(string(data), "| `"+v.key+"` |") {
			t.Errorf("docs/configuration.md has no table row for %s", v.key)
		}
	}
	for _, name := range regexp.MustCompile(`DEPLOY_[A-Z0-9_]+`).FindAllString(string(data), -1) {
		if _, ok := lookupVariable(name); !ok && name != typoBranch && name != typoTimeout {
			t.Errorf("docs/configuration.md names %s, which is not a variable", name)
		}
	}
}
