#!/usr/bin/env bash
# PostgreSQL's server programs (initdb, pg_ctl) for the shared MLflow server test
# (tests/test_postgres_server.py), which starts a private instance of its own: Debian's
# postgresql, installed when missing and the user is root. No system cluster is created.
set -euo pipefail
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || { command -v initdb >/dev/null && command -v pg_ctl >/dev/null; }; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "make test needs PostgreSQL's initdb and pg_ctl for the MLflow server test: run 'sudo apt-get install postgresql' (Debian/Ubuntu) and try again" >&2
  exit 2
fi
# the test runs its own instance on a free port; the package's default cluster is not needed
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/automl-tests.conf
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
