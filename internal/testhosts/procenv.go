package testhosts

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
)

// CommandEnv is this process's environment without its DEPLOY_ variables:
// for a pushdeploy started by a demo or a benchmark, so that the env file
// they write is what counts.
func CommandEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPLOY_") {
			out = append(out, kv)
		}
	}
	return out
}

// Secret is n random bytes in hex: a webhook secret or an API token.
func Secret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
