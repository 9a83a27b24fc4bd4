package testhosts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// run runs a program to completion and returns its combined output. env nil
// means the environment of this process. The error names the command and
// carries its output, which is where the programs we run explain themselves.
func run(ctx context.Context, env []string, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Check reports why Start cannot work on this machine, or nil when it can:
// it needs root and the OpenSSH server and client, git and python3.
func Check() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("not root (needed for useradd and sshd)"))
	}
	if _, err := os.Stat(sshdPath); err != nil {
		errs = append(errs, fmt.Errorf("no OpenSSH server: %w", err))
	}
	for _, p := range []string{"ssh", "ssh-keygen", "git", "git-shell", "python3", "useradd", "userdel"} {
		if _, err := exec.LookPath(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keygen writes an unencrypted ed25519 key pair to path and path.pub.
func keygen(ctx context.Context, path, comment string) error {
	_, err := run(ctx, nil, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	return nil
}

// publicKey returns the "type base64" part of the public key of the key pair
// at path, without the comment.
func publicKey(path string) (string, error) {
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		return "", fmt.Errorf("read public key: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", fmt.Errorf("read public key: %s: malformed", path+".pub")
	}
	return f[0] + " " + f[1], nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
