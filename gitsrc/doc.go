// Package gitsrc resolves what to deploy against the repository itself, with
// go-git: the tip of the release branch (listing the remote's refs, which
// fetches no objects), or a requested commit, full or abbreviated, that must
// be reachable from that tip (fetched into a bare mirror kept between runs).
//
// Over SSH the git server's host key is checked strictly against a
// known_hosts file, and the keys accepted are handed on in the Release so the
// hosts check the server against exactly those keys when they clone.
//
// In push mode, Archive writes the files of a resolved commit as a tar
// stream, read from the same mirror, for the deployer to pipe into
// `tar -x` on each host: the hosts need neither git nor a key.
//
// It is the only package that imports go-git. It does not log; everything
// goes back to the caller as a Release or an error, with any password in the
// repository URL blanked out.
package gitsrc
