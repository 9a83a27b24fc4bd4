# ha-restart.sh is DEPLOY_RESTART_CMD in the tests of several deployers:
# it starts no app, it logs. Each run appends to $HOME/ha.log one line
#   restart NOW DEPLOYMENT_ID COMMIT SWITCHED
# NOW is when it runs and SWITCHED when current was last moved (the
# symlink's own mtime: switch.sh renames a new link over it, right before
# the restart), both in nanoseconds since the epoch, by this machine's
# clock, which the test and the deployers share.
: "${CURRENT_DIR:?CURRENT_DIR is not set}"
switched=$(stat -c %.9Y "$CURRENT_DIR")
printf 'restart %s %s %s %s\n' "$(date +%s.%N)" "${DEPLOYMENT_ID:?}" "${COMMIT:?}" "$switched" >>"$HOME/ha.log"
