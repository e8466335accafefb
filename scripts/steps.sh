# Sourced by run.sh and test.sh: `step WHAT` says what comes next,
# `step_done` how long it took, and `steps_summary` lists every finished
# step's time again (a test run's log is long).
step_names=()
step_secs=()
step() {
  echo "==> $1" >&2
  step_name="$1"
  step_started=$SECONDS
}
step_done() {
  local took=$((SECONDS - step_started))
  echo "    ($took s)" >&2
  step_names+=("$step_name")
  step_secs+=("$took")
}
steps_summary() {
  local i
  echo "==> steps, in seconds" >&2
  for i in "${!step_names[@]}"; do
    printf '    %6d  %s\n' "${step_secs[$i]}" "${step_names[$i]}" >&2
  done
}
