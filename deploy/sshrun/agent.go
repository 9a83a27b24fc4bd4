package sshrun

import (
	"errors"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

var errNotLent = errors.New("pushdeploy: the deploy key is lent only while a clone runs")

// lentAgent is what a host sees through agent forwarding: the deploy key
// alone, usable only while a command that asked for it runs, and read-only
// (a host cannot add, remove or lock keys).
type lentAgent struct {
	inner   agent.Agent
	lending *atomic.Int32
}

var _ agent.ExtendedAgent = (*lentAgent)(nil)

func (a *lentAgent) open() bool { return a.lending.Load() > 0 }

func (a *lentAgent) List() ([]*agent.Key, error) {
	if !a.open() {
		return nil, nil
	}
	return a.inner.List()
}

func (a *lentAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	if !a.open() {
		return nil, errNotLent
	}
	return a.inner.Sign(key, data)
}

func (a *lentAgent) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	if !a.open() {
		return nil, errNotLent
	}
	if ext, ok := a.inner.(agent.ExtendedAgent); ok {
		return ext.SignWithFlags(key, data, flags)
	}
	return a.inner.Sign(key, data)
}

func (a *lentAgent) Signers() ([]ssh.Signer, error) { return nil, errNotLent }
func (a *lentAgent) Add(agent.AddedKey) error       { return errNotLent }
func (a *lentAgent) Remove(ssh.PublicKey) error     { return errNotLent }
func (a *lentAgent) RemoveAll() error               { return errNotLent }
func (a *lentAgent) Lock([]byte) error              { return errNotLent }
func (a *lentAgent) Unlock([]byte) error            { return errNotLent }
func (a *lentAgent) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}
