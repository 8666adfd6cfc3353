#!/usr/bin/env bash
# There, on a lent GPU machine (after `bash scripts/device_prepare.sh` here; docs/DESIGN.md "On a lent GPU"):
# resumes a `mixreal experiment` sweep from its committed records and brings the new records back.
#
#   run(command="bash scripts/device_experiment.sh table1 docs/runs/session10/table1 0,1,2 480",
#       carry=[".device"], timeout_s=600)
#
# Arguments: TABLE, RECORDS (a committed table folder, copied in so that finished runs are skipped), SEEDS,
# SECONDS (stop starting runs after this long, so the records come back inside the call's limit).
# The paths are the ones this project's CPU sweeps used (/work/shared/data, /work/exp), so the cached gap
# readings and render settings in the records match and nothing is measured twice.
# Writes $OUT/records.tar.gz (summary.json, metrics.csv, gap.json per run; the table files) and $OUT/log.txt.
set -uo pipefail
table=$1 records=$2 seeds=$3 budget=${4:-480}
start=$(date +%s)
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh
rm -rf "/work/exp/$table" && cp -r "$records" "/work/exp/$table"

# one row at a time, so that the time budget is checked between runs
python3 - "$table" <<'EOF' > /tmp/rows.txt
import sys
from train.experiments import row_names
print("\n".join(row_names(sys.argv[1])))
EOF
workers=$(( $(nproc) / 2 ))
for seed in ${seeds//,/ }; do
  while read -r row; do
    if [ $(( $(date +%s) - start )) -gt "$budget" ]; then echo "time budget spent: stopping before $row"; break 2; fi
    python3 cli.py experiment "$table" --data c10-da4 --scale quick --seeds "$seed" --rows "=$row" \
      --out /work/exp --workers "$workers" --quiet 2>&1 | tee -a "$OUT/log.txt" | tail -3
  done < /tmp/rows.txt
done
cd /work/exp && find "$table" \( -name summary.json -o -name metrics.csv -o -name gap.json -o -name 'table.*' \
  -o -name results.json -o -name render.json \) -print0 | tar -czf "$OUT/records.tar.gz" --null -T -
echo "records: $(tar -tzf "$OUT/records.tar.gz" | wc -l) files, $(( $(date +%s) - start )) s in all"
