#!/usr/bin/env bash
# PostgreSQL (127.0.0.1:5432, trust) and MariaDB (127.0.0.1:3306, root without password):
# this machine starts both before a session; start them again if they stopped.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
maria_up() { mariadb -h 127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; }

if ! pg_up; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 100); do pg_up && break; sleep 0.1; done
fi
pg_up || { echo "PostgreSQL on 127.0.0.1:5432 does not answer" >&2; exit 1; }
echo "PostgreSQL answers on 127.0.0.1:5432"

if ! maria_up; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 100); do maria_up && break; sleep 0.2; done
fi
maria_up || { echo "MariaDB on 127.0.0.1:3306 does not answer" >&2; exit 1; }
mariadb -h 127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test'
echo "MariaDB answers on 127.0.0.1:3306"
