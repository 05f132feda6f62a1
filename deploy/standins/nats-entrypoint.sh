#!/bin/sh
# As the official nats image: `-c FILE` runs `nats-server -c FILE`; anything else runs as given.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- nats-server "$@"
fi
exec "$@"
