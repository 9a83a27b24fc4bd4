// Package sshrun runs deploy.Commands on hosts over SSH with
// golang.org/x/crypto/ssh: host keys checked against a known_hosts file,
// keys held in an in-memory agent keyring for the life of a Runner (and,
// through KeyedDialer, only while hosts are connected), one
// connection per host reused by all of its commands, and the deploy key lent
// through agent forwarding to the one command that asks for it.
//
// It does not log; remote output goes to the writers of each Command.
package sshrun
