#!/bin/sh
echo "$(cat /srv/greeting.txt) (version $APP_VERSION, running as $(id -un))"
cat /srv/shout.txt /srv/built.txt
