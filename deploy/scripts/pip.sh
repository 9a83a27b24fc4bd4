# pip.sh installs requirements.txt into the venv at $1, run in the release
# folder; a shared venv ($2 = shared) is then marked complete and linked
# into the release.
set -e
if [ -f requirements.txt ]; then
	"$1/bin/python" -m pip install --disable-pip-version-check --no-input -r requirements.txt
else
	echo "no requirements.txt: nothing to install"
fi
if [ "$2" = shared ]; then
	touch "$1/.pushdeploy-complete"
	ln -s "../../venvs/${1##*/}" venv
fi
