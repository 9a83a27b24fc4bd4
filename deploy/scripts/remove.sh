# remove.sh deletes a release that failed to build. $1 root, $2 name.
cd -- "$1" && rm -rf -- "releases/$2"
