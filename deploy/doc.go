// Package deploy is the domain of pushdeploy: what a push asks for (Push),
// the commit that will be shipped (Release), the servers of the pool (Host),
// the remote commands run on them (Command), and the orchestrator that ships a
// release to every host (Deployer) and reports what happened (Deployment).
//
// It never imports echo, go-git or x/crypto/ssh: adapters implement the small
// interfaces declared here (Dialer, Conn, Resolver) and depend on this package,
// never the other way round.
package deploy
