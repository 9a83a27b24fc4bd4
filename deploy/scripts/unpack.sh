# unpack.sh writes the commit's files into the new release folder, then
# checks them (check_tree). With a commit ($3), they come from the host's
# mirror (git archive); without one (push mode), from the tar stream the
# deployer sends on stdin.
# $1 root, $2 release name, $3 commit or "".
set -e
cd -- "$1"
mkdir -- "releases/$2"

# check_tree refuses a commit whose files would make the deploy write or
# read outside the release (docs/deploy.md, "What the repository may not
# contain"): a top-level venv, REVISION, REVISION.tmp or
# .pushdeploy-upload, which the deploy itself writes (a symlink there
# would carry the write elsewhere; a committed REVISION would make a
# half-built release look complete), and a requirements.txt that is a
# symlink leading out of the release (pip and the venv key would read that
# file). The caller removes the release when it fails.
check_tree() {
	cd -- "releases/$2"
	rel=$(pwd -P)
	for p in venv REVISION REVISION.tmp .pushdeploy-upload; do
		if [ -e "$p" ] || [ -L "$p" ]; then
			echo "the repository has $p at its top level, which pushdeploy writes in each release: remove it from the repository (git rm -r --cached $p) and deploy again" >&2
			exit 1
		fi
	done
	if [ -L requirements.txt ]; then
		real=$(readlink -f requirements.txt || true)
		case "$real" in
		"$rel"/*) ;;
		*)
			echo "requirements.txt is a symlink to $(readlink requirements.txt), outside the release: commit the file itself, or a link within the repository" >&2
			exit 1
			;;
		esac
	fi
}

if [ -z "$3" ]; then
	# Push mode. The stream's last entry is the marker the deployer adds
	# once it has sent every file (deploy.uploadMarker), holding how many
	# paths the upload makes: a stream cut between two entries looks
	# whole to tar, so only the marker shows that it is.
	tar -x -C "releases/$2"
	m="releases/$2/.pushdeploy-upload"
	if [ ! -f "$m" ] || [ -L "$m" ]; then
		echo "the upload ended before the last of its files: the release is incomplete" >&2
		exit 1
	fi
	IFS= read -r want <"$m" || true
	rm -f -- "$m"
	got=$(cd -- "releases/$2" && find . ! -name . -exec printf '%.0sx' {} + | wc -c | tr -d ' ')
	case "$want" in
	'' | *[!0-9]*)
		echo "the upload's end marker is unreadable: the release is incomplete" >&2
		exit 1
		;;
	esac
	if [ "$got" -ne "$want" ]; then
		echo "the upload is incomplete: $got of its $want files, folders and links arrived" >&2
		exit 1
	fi
	check_tree "$@"
	exit 0
fi
# The failure marker lives outside the release, where the repository's
# files cannot be: a pipeline's status is its last command's.
fail=".pushdeploy-archive-failed-$2"
rm -f -- "$fail"
# The mirror's lock, shared: a fetch of another deployment (mirror.sh) may
# be making the mirror anew.
{ flock -s .repo.lock git -C .repo archive --format=tar "$3" || echo failed >"$fail"; } | tar -x -C "releases/$2"
if [ -e "$fail" ]; then
	rm -f -- "$fail"
	echo "git archive of $3 failed" >&2
	exit 1
fi
check_tree "$@"
