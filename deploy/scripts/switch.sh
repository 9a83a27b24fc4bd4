# switch.sh moves current, the one way it is ever moved: a new symlink
# renamed over the old one (rename(2) is atomic: current is never missing),
# then a line in revisions.log. $2 says why:
#   deploy    to the new release $3, first marked complete: REVISION,
#             written last so that its presence means "fully built"
#             (REVISION.tmp is removed first, so that the write cannot
#             follow a symlink put there)
#   rollback  to an existing release $3, which must be complete
#   revert    back to $3 after the new release $6 failed to start, or to
#             nothing when $3 is ""; $6 is then deleted
# A deploy or rollback prints what current pointed at before; a revert
# prints the commit of the release it went back to.
# $1 root, $2 deploy|rollback|revert, $3 release name, $4 its commit (""
# read from its REVISION), $5 deployment id, $6 (revert) the release to
# delete.
set -e
cd -- "$1"
action=$2 rel=$3 commit=$4 id=$5
case "$action" in
deploy)
	rm -f -- "releases/$rel/REVISION.tmp"
	printf '%s\n' "$commit" >"releases/$rel/REVISION.tmp"
	mv -f "releases/$rel/REVISION.tmp" "releases/$rel/REVISION"
	;;
rollback)
	if [ ! -f "releases/$rel/REVISION" ] || [ ! -d "releases/$rel/venv" ]; then
		echo "release $rel is not complete on this host (REVISION or venv missing)" >&2
		exit 1
	fi
	;;
revert) ;;
*)
	echo "switch.sh: unknown action $action" >&2
	exit 2
	;;
esac
if [ -z "$rel" ] && [ "$action" != revert ]; then
	echo "switch.sh: no release to $action to" >&2
	exit 2
fi
prev=$(readlink current 2>/dev/null || true)
if [ -n "$rel" ]; then
	if [ -z "$commit" ]; then
		commit=$(cat "releases/$rel/REVISION" 2>/dev/null || true)
	fi
	ln -sfn "releases/$rel" ".current.tmp-$id"
	mv -T ".current.tmp-$id" current
	logged=$action
	[ "$action" = deploy ] || logged=rollback
	printf '%s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$logged" "$rel" "${commit:-unknown}" "$id" >>revisions.log
else
	rm -f current
fi
if [ "$action" != revert ]; then
	printf '%s\n' "$prev"
	exit 0
fi
rm -rf -- "releases/$6"
if [ -n "$rel" ]; then
	printf '%s\n' "${commit:-unknown}"
fi
