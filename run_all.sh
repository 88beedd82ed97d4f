#!/usr/bin/env bash
# The suite's single entry point. Every subcommand that needs Python first makes sure the
# pinned environment exists (tools/setup_env.sh: built once, cached outside the checkout).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Kept in step with ablations.TABLES by tests/test_run_all.py.
TABLES=(table4 table5 tableS1 mobilemamba_mrffi)

usage() {
  cat <<EOF
Usage: ./run_all.sh <command> [args...]

Commands:
  setup                 build (once) the pinned environment and print its python
  test [PYTEST ARGS]    run the test suite (tests/) in the environment (as root, first stands up
                        a SLURM cluster (one node + a two-node partition) for the executor
                        tests: tools/slurm_local.sh)
  list                  list the known ablation tables and their rows
  table4 [OPTIONS]      MambaVision Table 4: token-mixer design (ImageNet, COCO, ADE20K)
  table5 [OPTIONS]      MambaVision Table 5: hybrid attention pattern (ImageNet)
  tableS1 [OPTIONS]     MambaVision Table S.1: window sizes (ImageNet, COCO)
  mobilemamba_mrffi [OPTIONS]
                        MobileMamba MRFFI flags (ImageNet)
  all [OPTIONS]         every table above, one after the other
  FILE.py [OPTIONS]     a table of your own: a Python file that defines TABLE (status, report,
                        plan, eval and doctor take the same path; docs/own_ablation.md)
  doctor [<table>] [table options]
                        check this machine or cluster before queuing a table: versions, mmcv
                        ops, mamba-ssm, data, disk, GPU memory, SLURM, all-reduce (one line each;
                        exit 0 only when nothing failed; see ./run_all.sh doctor --help)
  status <table> [--rows R] [--tasks T] [--seeds N] [--wait] [--work-dir DIR] [--profile P]
                        one line per selected run: state, SLURM job, progress, elapsed, ETA
                        (exit 0 only when every selected run has finished; --wait: block until
                        they have all ended)
  report <table> [--work-dir DIR] [--out DIR] [--pick last|best] [--profile smoke|full]
                        merge a table's logs into reports/<table>/<table>.{md,csv,png}
  eval <table> --rows R --checkpoint FILE [--tasks cls|det|seg] [--profile smoke|full]
       [--data-root D] [--work-dir DIR] [--fuse-bn] [--no-ema] [--launcher ...] [--gpus N]
                        evaluate a checkpoint (official or ours) in a row's config
                        (see ./run_all.sh eval --help)
  plan <table> [--rows R] [--tasks T] [--gpus 8,32] [--iters N] [--gpu-mem GiB] [--out DIR]
       [--data-dir DIR] [--schedule-scale F,..] [--subset none,in100] [--seeds N,..|auto]
       [--max-seeds N]  pilot each full run at real size on this device, estimate the
                        table's cost: reports/<table>/plan.{json,md}
  python ARGS...        run the environment's python (for your own scripts)
  -h, --help            this message

Table options (see ./run_all.sh table4 --help):
  --profile smoke|full  smoke (default): tiny generated data, CPU, minutes; full: the papers' recipes
  --rows R1,R2 --tasks cls,det,seg --seeds N --gpus N|cls=32,det=8,seg=8
  --launcher none|pytorch|slurm --jobs N --rerun-stale --data-root DIR --work-dir DIR --dry-run
  SLURM: --partition --account --qos --time --gpus-per-node --cpus-per-gpu --mem --sbatch-args

Environment:
  SUITE_PYTHON=/path/to/python   build the environment on top of that interpreter and its torch
                                 (e.g. a CUDA build on a GPU cluster)
  SUITE_CACHE_DIR=DIR            where environments and built wheels are cached
                                 (default \${XDG_CACHE_HOME:-~/.cache}/mamba-ablation-suite)
EOF
}

env_python() {
  "$ROOT/tools/setup_env.sh"
}

in_env() {
  # Run the environment's python from the repository root, so `backbones`, `ablations`,
  # `runs`, `reports` and `tools` import as packages.
  local py
  py=$(env_python)
  cd "$ROOT"
  # mmengine 0.10.7 imports pkg_resources, which setuptools 80 flags on every import (and
  # every run subprocess): noise, not a problem we can act on.
  export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:pkg_resources is deprecated as an API:UserWarning"
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$py" "$@"
}

# A table file's path made absolute: the fronts run from the repository root.
table_path() {
  case "$1" in
    *.py) if [ -f "$1" ]; then echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
          else echo "$1"; fi ;;
    *) echo "$1" ;;
  esac
}

is_table() {
  local t
  for t in "${TABLES[@]}" all; do [ "$t" = "$1" ] && return 0; done
  return 1
}

if [ $# -eq 0 ]; then
  usage >&2
  exit 2
fi

cmd=$1
shift
case "$cmd" in
  -h|--help|help)
    usage ;;
  setup)
    [ $# -eq 0 ] || { echo "setup takes no arguments" >&2; usage >&2; exit 2; }
    env_python ;;
  test)
    # The SLURM executor's tests run against a real cluster on this machine (tools/slurm_local.sh).
    if [ "$(id -u)" = 0 ]; then
      "$ROOT/tools/slurm_local.sh" start
    elif ! sinfo >/dev/null 2>&1; then
      echo "run_all.sh test: no SLURM cluster answers and this is not root: the SLURM tests will" \
           "fail; start one with: sudo tools/slurm_local.sh" >&2
    fi
    in_env -m pytest "$@" ;;
  list)
    [ $# -eq 0 ] || { echo "list takes no arguments" >&2; usage >&2; exit 2; }
    # The table data is plain Python: no need to build the environment just to list it.
    cd "$ROOT" && exec python3 -m tools.list_tables ;;
  # Every command's front is a module of tools/.
  report|status|doctor|plan)
    [ $# -eq 0 ] || set -- "$(table_path "$1")" "${@:2}"
    in_env -m "tools.$cmd" "$@" ;;
  eval)
    [ $# -eq 0 ] || set -- "$(table_path "$1")" "${@:2}"
    in_env -m tools.eval_checkpoint "$@" ;;
  python)
    in_env "$@" ;;
  *.py)
    in_env -m tools.run_table "$(table_path "$cmd")" "$@" ;;
  *)
    if is_table "$cmd"; then
      in_env -m tools.run_table "$cmd" "$@"
    else
      echo "run_all.sh: unknown command or option: $cmd" >&2
      usage >&2
      exit 2
    fi ;;
esac
