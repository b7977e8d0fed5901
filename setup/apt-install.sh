#!/usr/bin/env bash
# apt-get install the Debian packages named, as root, waiting (at most APT_LOCK_WAIT seconds,
# default 300, and saying so once) while another apt or dpkg process holds apt's locks, as the
# machine's own updates do on a cloud VM's first boot. Used by make deps and make bench-deps.
set -euo pipefail
wait_s=${APT_LOCK_WAIT:-300}
export DEBIAN_FRONTEND=noninteractive
said=""

run() {  # "$@", retried every 5 s while apt's lock is someone else's, until the deadline
  local deadline=$((SECONDS + wait_s)) out
  while :; do
    if out=$("$@" 2>&1); then return 0; fi
    case $out in
      *"Could not get lock"* | *"Unable to lock"* | *"Unable to acquire the dpkg frontend lock"*)
        if ((SECONDS >= deadline)); then
          echo "error: apt's lock is still held after ${wait_s} s: ${out##*$'\n'}" >&2
          return 1
        fi
        if [[ -z $said ]]; then
          echo "waiting for another apt or dpkg process to release apt's lock (up to ${wait_s} s)" >&2
          said=1
        fi
        sleep "${APT_LOCK_POLL:-5}" ;;
      *)
        printf '%s\n' "$out" >&2
        return 1 ;;
    esac
  done
}

(($#)) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends "$@"
