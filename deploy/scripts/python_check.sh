# python_check.sh proves DEPLOY_PYTHON runs and can build a venv
# (pushdeploy check). $1 python.
exec "$1" -c 'import sys, venv, ensurepip; print(sys.executable, sys.version.split()[0])'
