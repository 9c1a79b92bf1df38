#!/usr/bin/env bash
# Runs a command under an X server of its own (1600x1000, 24-bit). The X authority file is ours
# (-f): without it xvfb-run's temporary folder can be removed while a window still exits, and it
# then reports its own exit code instead of the command's.
set -uo pipefail
auth=$(mktemp /tmp/routelab_xauth.XXXXXX)
xvfb-run -a -f "$auth" -s '-screen 0 1600x1000x24' "$@"
rc=$?
rm -f "$auth"
exit $rc
