#!/usr/bin/env bash
# The quickstart, end to end, on a generated social-feed table:
# generate -> init -> validate -> train -> models -> audit.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
demo="$here/demo"
rm -rf "$demo" && mkdir -p "$demo" && cd "$demo"

# A small budget so the demo takes a few minutes on 2 cores; the project file's defaults
# (20 trials / 120 s per candidate) are for real work. Any key can be overridden like this.
export LOOPML_TRAIN__TUNING__TRIALS="${LOOPML_TRAIN__TUNING__TRIALS:-8}"
export LOOPML_TRAIN__TUNING__TIMEOUT_SECONDS="${LOOPML_TRAIN__TUNING__TIMEOUT_SECONDS:-30}"
export LOOPML_TRAIN__BOOTSTRAP="${LOOPML_TRAIN__BOOTSTRAP:-100}"

step() { printf '\n\033[1;36m== %s\033[0m\n$ %s\n' "$1" "$2"; }

step "1. generate 100k feed impressions" "loopml data feed --rows 100000 --seed 7 --out feed.parquet"
loopml data feed --rows 100000 --seed 7 --out feed.parquet

step "2. infer the project file and data contract" "loopml init --data feed.parquet --target engaged"
loopml init --data feed.parquet --target engaged --name feed-engagement
sed -n '1,40p' loopml.yaml

step "3. validate a fresh day of data against the contract" "loopml validate fresh.parquet"
loopml data feed --rows 20000 --seed 8 --out fresh.parquet
loopml validate fresh.parquet

step "   ... and a table whose upstream broke (nulls, unit change)" "loopml validate broken.parquet"
loopml data feed --rows 20000 --seed 9 --scenario broken_feature --onset 0.0 --out broken.parquet
loopml validate broken.parquet || echo "(exit code $? -- violations found, as expected)"

step "4. train baselines and tuned candidates, gate, register" "loopml train"
loopml train

step "5. the registry" "loopml models"
loopml models

step "6. train again on more data; the new version arrives as challenger" "loopml train"
loopml data feed --rows 150000 --seed 7 --out feed.parquet
loopml train || true
loopml models

step "7. promote the challenger if it beats the champion (forced when it does not)" "loopml promote 2 --reason 'retrained on more data'"
loopml promote 2 --reason "retrained on more data" || \
  loopml promote 2 --reason "demo: retrained on more data" --force

step "8. roll back, and read the audit log" "loopml rollback --reason 'demo rollback'; loopml audit"
loopml rollback --reason "demo rollback"
loopml audit

printf '\nThe champion loads with plain MLflow:\n'
python - <<'PY'
import mlflow, pandas as pd
mlflow.set_tracking_uri("sqlite:///.loopml/mlflow.db")
model = mlflow.pyfunc.load_model("models:/feed-engagement@champion")
print(model.predict(pd.read_parquet("fresh.parquet").head(5)))
PY
cat <<MSG

Done. Everything is in $demo:
  MLflow UI:  cd demo && mlflow ui --backend-store-uri sqlite:///.loopml/mlflow.db
  report:     demo/.loopml/reports/<run id>/report.html
MSG
