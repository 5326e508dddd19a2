#!/usr/bin/env bash
# The quickstart, end to end, on a generated social-feed table:
# generate -> init -> validate -> train -> models -> retrain -> promote -> rollback -> audit
# -> serve (three dialects, ledger, feedback) -> monitor (drift, alerts) -> stop -> export
# -> batch score.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
demo="$here/demo"
rm -rf "$demo" && mkdir -p "$demo" && cd "$demo"

# A small budget so the demo takes a few minutes on 2 cores; the project file's defaults
# (20 trials / 90 s per candidate) are for real work. Any key can be overridden like this.
export LOOPML_TRAIN__TUNING__TRIALS="${LOOPML_TRAIN__TUNING__TRIALS:-8}"
export LOOPML_TRAIN__TUNING__TIMEOUT_SECONDS="${LOOPML_TRAIN__TUNING__TIMEOUT_SECONDS:-30}"
export LOOPML_TRAIN__BOOTSTRAP="${LOOPML_TRAIN__BOOTSTRAP:-100}"
# Monitoring windows of 2,500 predictions (the default, 5,000, suits real traffic); the
# server monitors when asked (POST /admin/monitor) instead of every minute.
export LOOPML_MONITOR__WINDOW="${LOOPML_MONITOR__WINDOW:-2500}"
export LOOPML_MONITOR__INTERVAL_SECONDS="${LOOPML_MONITOR__INTERVAL_SECONDS:-0}"

step() { printf '\n\033[1;36m== %s\033[0m\n' "$1"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

step "1. generate 100k feed impressions (30 days, seeded)"
run loopml data feed --rows 100000 --seed 7 --out feed.parquet

step "2. infer the project file and the data contract from the table"
run loopml init --data feed.parquet --target engaged --name feed-engagement
run loopml contract show

step "3. validate new tables against the contract: a normal day, then a broken upstream"
run loopml data feed --rows 20000 --seed 8 --out fresh.parquet
run loopml validate fresh.parquet
run loopml data feed --rows 20000 --seed 9 --scenario broken_feature --onset 0 --out broken.parquet
run loopml validate broken.parquet || echo "(exit code $? -- violations found, as expected)"

step "4. train the floor and tuned candidates, evaluate, choose, register"
echo "(a model must beat the trivial baseline by gate.margin; a more complex model must beat"
echo " a simpler one by the margin; the binary label is cut at a threshold chosen on"
echo " validation rows -- the output says why the chosen model won, and where it cuts)"
run loopml train

step "5. the registry"
run loopml models

step "6. retrain on a bigger table; a new version arrives as challenger"
run loopml data feed --rows 200000 --seed 11 --out feed.parquet
if run loopml train; then
  step "7. promote the challenger only if it beats the champion on rows neither trained on"
  if ! run loopml promote 2 --reason "retrained on more data"; then
    echo "(the gate held the champion; an operator can override, and it is recorded)"
    run loopml promote 2 --reason "demo: override to show the audit trail" --force
  fi
  step "8. roll back, and read the audit log"
  run loopml rollback --reason "demo rollback"
else
  echo "(the retrained model did not beat the baselines, so nothing was registered)"
fi
run loopml audit

step "9. the champion loads with plain MLflow"
python -W ignore::UserWarning - <<'PY'
import mlflow, pandas as pd
mlflow.set_tracking_uri("sqlite:///.loopml/mlflow.db")
model = mlflow.pyfunc.load_model("models:/feed-engagement@champion")
print(model.predict(pd.read_parquet("fresh.parquet").head(5)))
PY
step "10. serve the champion: every prediction recorded in the ledger"
port="${LOOPML_DEMO_PORT:-8765}"
loopml serve --port "$port" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
run curl -s "http://127.0.0.1:$port/health/ready"; echo
run python "$here/scripts/demo_client.py" --port "$port" --table fresh.parquet --requests 300
run loopml ledger stats
run curl -s "http://127.0.0.1:$port/metrics" | grep -E "^loopml_(requests_total|ledger_queue_rows|predicted_rows_total)" | head -8 || true

step "11. monitoring: a normal day, then new users arrive (another country and device mix)"
run python "$here/scripts/demo_client.py" --port "$port" --table fresh.parquet --requests 10000 --bulk
run loopml monitor run || echo "(exit code $? -- an alert is raised)"
run loopml data feed --rows 10000 --seed 12 --scenario covariate_shift --onset 0 --out shifted.parquet
run python "$here/scripts/demo_client.py" --port "$port" --table shifted.parquet --requests 10000 --bulk
run loopml monitor run || echo "(exit code $? -- alerts raised, as expected)"
run loopml alerts
token="$(cat .loopml/admin.token)"
curl -s -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:$port/admin/monitor" >/dev/null
run curl -s "http://127.0.0.1:$port/metrics" | grep -E "^loopml_(drift_share|alerts_raised|performance)" | head -8 || true

step "12. stop the server cleanly (SIGTERM drains in-flight requests), export the ledger"
kill -TERM "$server"
wait "$server" && echo "(server exited 0)"
trap - EXIT
run loopml ledger export --since 1d --out ledger.parquet
python - <<'PY'
import pandas as pd
frame = pd.read_parquet("ledger.parquet")
print(frame[["request_id", "version", "arm", "prediction", "proba_1", "label"]].head(5))
print(f"{len(frame)} predictions, {frame['label'].notna().sum()} with labels")
PY

step "13. batch scoring with the same artifact; bad rows set aside with their reasons"
run loopml score broken.parquet scored.parquet || echo "(exit code $? -- some rows were rejected)"

cat <<MSG

Done. Everything is in $demo:
  MLflow UI:  cd demo && mlflow ui --backend-store-uri sqlite:///.loopml/mlflow.db
  reports:    demo/.loopml/reports/<run id>/report.html (also in each MLflow run)
  serve:      cd demo && loopml serve   (then open http://127.0.0.1:8080/docs)
  ledger:     demo/.loopml/ledger.db (SQLite); demo/ledger.parquet (export)
  monitoring: demo/.loopml/monitor/monitor.html (drift, performance, alerts); loopml alerts
MSG
