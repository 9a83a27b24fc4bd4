# shared.sh links <root>/shared/<path> into the release for each path. A
# missing shared folder is created; a missing shared file (a last part
# with a dot, like .env or settings.py) fails the host before its switch,
# naming the file. A path ending in "/" is always a folder. Nothing is
# linked through a symlink that the repository put in the release, which
# could point anywhere.
# $1 root, $2 release name, then the paths.
set -e
root=$1
rel="$1/releases/$2"
shift 2
for p in "$@"; do
	dir=no
	case "$p" in */) dir=yes; p=${p%/} ;; esac
	src="$root/shared/$p"
	if [ ! -e "$src" ] && [ ! -L "$src" ]; then
		case "${p##*/}" in
		*.*) [ "$dir" = yes ] || { echo "shared file $src is missing: create it on this host (DEPLOY_SHARED_PATHS lists $p)" >&2; exit 1; } ;;
		esac
		mkdir -p -- "$src"
		echo "created shared folder $src"
	fi
	d=$rel
	rest=$p
	while :; do
		case "$rest" in */*) ;; *) break ;; esac
		d="$d/${rest%%/*}"
		rest=${rest#*/}
		if [ -L "$d" ]; then
			echo "refusing to link $p: $d is a symlink in the release" >&2
			exit 1
		fi
		mkdir -p -- "$d"
	done
	rm -rf -- "${rel:?}/${p:?}"
	ln -s -- "$src" "$rel/$p"
	echo "linked $p -> $src"
done
