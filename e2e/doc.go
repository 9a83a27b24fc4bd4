// Package e2e holds the end-to-end tests: the real pushdeploy binary, built
// once in TestMain, against real sshd hosts on loopback, a real git server
// reached over SSH with a read-only key, and real python3 -m venv and pip
// (with wheels built locally).
//
// It holds no code of its own: the binary is driven only through its
// command line, environment and HTTP answers, as a user would.
package e2e
