#!/bin/bash
# Runs once, when the PostgreSQL container starts on an empty data
# directory: a role for Temporal (it creates its own two databases through
# temporal-sql-tool, hence CREATEDB) and a role owning the app's database.
# Passwords come from the secret files, never from this file.
set -euo pipefail
temporal_pw="$(cat /run/secrets/temporal_db_password)"
app_pw="$(cat /run/secrets/app_db_password)"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	-v temporal_pw="$temporal_pw" -v app_pw="$app_pw" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_pw';
CREATE ROLE custodyflows LOGIN PASSWORD :'app_pw';
CREATE DATABASE custodyflows OWNER custodyflows;
SQL
