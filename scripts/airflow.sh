#!/usr/bin/env bash
# Local Airflow for JStore: `airflow standalone` (SQLite metadata, the simple auth manager) with
# the project's dags/ and plugins/, its home under .jstore/airflow and the UI on port 8085.
# Stop it with Ctrl-C. The environment comes from jstore.orchestration.airflow_environment.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${AIRFLOW_PORT:-8085}"
home="${AIRFLOW_HOME:-$PWD/.jstore/airflow}"
mkdir -p "$home"
eval "$(.venv/bin/python -m jstore.orchestration "$home" "$port")"

passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
airflow standalone &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null; wait "$pid"' INT TERM

for _ in $(seq 180); do
  [ -s "$passwords" ] && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 1
done
cat <<MSG

================================================================================
Airflow UI:  $AIRFLOW__API__BASE_URL   (the "Feature store" menu holds JStore's pages)
Login:       user and password in $passwords
             $(cat "$passwords" 2>/dev/null || echo "(not written yet)")
DAGs:        $AIRFLOW__CORE__DAGS_FOLDER (built from the registry snapshot; new DAGs start paused)
================================================================================

MSG
wait "$pid"
