#!/bin/sh
# The portal's database and its two roles, made once by the postgres image when its volume is
# first initialised (docker-entrypoint-initdb.d). Neither role is a superuser.
#   owner (dsr_owner): owns the database and its tables; used only by `manage.py setup_database`
#     (docker-compose's migrate service), which migrates and then grants the application role.
#   application (dsr_app): what web, worker and scheduler connect as; it may only INSERT and
#     SELECT on the audit tables, so it can neither rewrite the trail nor disable its trigger.
# The owner's password comes from a file (a Docker secret, never in the portal's environment),
# the application's from DSR_DB_APP_PASSWORD. For a volume made before this script existed,
# run the same statements by hand, then `REASSIGN OWNED BY dsr TO dsr_owner` in the database.
set -eu
owner="${DSR_DB_OWNER:-dsr_owner}"
app="${DSR_DB_APP:-dsr_app}"
database="${DSR_DB_NAME:-dsr}"
owner_password="$(cat "${DSR_DB_OWNER_PASSWORD_FILE:-/run/secrets/db_owner_password}")"
: "${DSR_DB_APP_PASSWORD:?DSR_DB_APP_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v owner="$owner" -v app="$app" -v database="$database" \
    -v owner_password="$owner_password" -v app_password="$DSR_DB_APP_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
CREATE DATABASE :"database" OWNER :"owner";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app";
\connect :"database"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
