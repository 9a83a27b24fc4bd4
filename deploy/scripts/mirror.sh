# mirror.sh brings the host's own mirror of the release branch
# (<root>/.repo, a bare repository) up to date, and checks that it has the
# commit: fetching only what is new makes a redeploy cheap, and a commit
# the mirror has already needs no fetch at all. A mirror that cannot be
# updated (damaged by a kill, say) is made anew once. Run inside git.sh,
# which pins the git server's host key. The mirror has a lock of its own,
# root/.repo.lock: a deployment fetches before it takes the host lock
# (phase.sh), so two deployers may fetch at once; unpack.sh reads the
# mirror holding it shared.
# $1 root, $2 url, $3 branch, $4 commit.
set -e
root=$1 url=$2 branch=$3 commit=$4
cd -- "$root"
exec 8>>.repo.lock
flock 8
# The URL is written into the mirror's config. It comes without its
# password (deploy's hostGit), and replaces one written there before; the
# config is rewritten only when the URL differs, so that a deploy that
# needs nothing new leaves the mirror as it was.
seturl() {
	[ "$(git -C .repo config --get remote.origin.url)" = "$url" ] ||
		git -C .repo config remote.origin.url "$url"
}
if [ -d .repo ]; then
	seturl 2>/dev/null || true
fi
if [ -d .repo ] && git -C .repo cat-file -e "$commit^{commit}" 2>/dev/null; then
	# Redeploying a commit the mirror has (an older one, or the same):
	# the deployer already checked it is on the branch; no login needed.
	echo "commit $commit is in the mirror already: nothing to fetch"
	exit 0
fi
fetch() {
	[ -d .repo ] || git init --quiet --bare .repo
	seturl
	git -C .repo fetch --quiet --no-tags origin "+refs/heads/$branch:refs/heads/$branch"
}
if ! fetch; then
	echo "the mirror $root/.repo could not be updated; making it anew" >&2
	rm -rf .repo
	fetch
fi
if ! git -C .repo cat-file -e "$commit^{commit}" 2>/dev/null; then
	echo "commit $commit is not on branch $branch of the repository any more (was it force-pushed away?)" >&2
	exit 1
fi
