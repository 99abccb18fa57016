# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # the prof_ variables are read by the benches that source this
# perf/profile.sh - system calls per operation, and the report's rows.
#
#   source "$here/profile.sh"; prof_init perf/net-bench
#
# Sourced by the perf/*-bench scripts. It counts the system calls of a
# server (or of a program it runs) with Debian's linux-perf:
#
#   perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter
#
# every system call the process's threads enter, and of them the
# io_uring_enter calls (the ring's enter calls: how often weft, liburing
# or fio go into the kernel to submit or to wait).
#
# Counting is never done in a measured run: while any syscall tracepoint
# is counted, the kernel takes the slow path of every system call of
# every task on the machine (~0.4 us more per call here: 64-byte dd went
# from 2.2 s to 4.7 s for 6 million calls), which would slow the peers
# that make more calls more. So each bench does a short run more of each
# figure (WEFT_BENCH_PROFILE_SECS, default 2 s) with the counter on, and
# divides the counts by the operations of that run; the throughput and
# the CPU time per operation come from the measured runs, unperturbed.
#
# Without perf, without the tracepoints (no tracefs, not root and
# kernel.perf_event_paranoid > -1), or with WEFT_BENCH_PROFILE=0, the
# columns say n/a and prof_note says why, once.
#
# Rows: prof_row appends one line per figure to $WEFT_BENCH_TSV (when
# set; scripts/bench sets it to build-release/bench/report.tsv), which
# perf/plot draws. Columns (tab-separated, "-" when unknown):
#
#   bench workload impl role rate unit cpu_us_op sys_op enter_op
#
# role: base (the workload's baseline: ratios are against it), weft (a
# weft figure) or peer (another peer); rate: operations per second,
# higher is better; cpu_us_op: CPU time of the server (or program) per
# operation, in microseconds; sys_op, enter_op: system calls and
# io_uring_enter calls per operation.

prof_on=0
prof_enter_on=0
prof_why=
prof_name=perf/profile.sh
prof_secs=${WEFT_BENCH_PROFILE_SECS:-2}
prof_pid=
prof_out=
prof_sys=-
prof_enter=-
prof_task_ms=-
prof_noted=0
prof_events=
prof_t0=
prof_wall=-
prof_wrap=() # the words that run a command counted; prof_parse after it
prof_dir=
prof_ctl=  # perf stat's control FIFO and its acknowledgements, open
prof_ack=

# prof_init NAME: can system calls be counted here? Sets prof_on, and
# prof_why when not.
prof_init() {
    prof_name=$1
    local err
    prof_dir=$(mktemp -d /tmp/weft-prof.XXXXXX)
    prof_out=$prof_dir/stat
    mkfifo "$prof_dir/ctl" "$prof_dir/ack"
    if [[ ${WEFT_BENCH_PROFILE:-1} == 0 ]]; then
        prof_why="WEFT_BENCH_PROFILE=0"
        return 0
    fi
    if ! command -v perf >/dev/null 2>&1; then
        prof_why="perf is not installed (Debian: apt-get install linux-perf)"
        return 0
    fi
    if ! err=$(perf stat -x, -o /dev/null -e raw_syscalls:sys_enter -- true 2>&1); then
        prof_why="perf cannot count the raw_syscalls:sys_enter tracepoint"
        prof_why+=" (kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'),"
        prof_why+=" uid $(id -u); it needs root or paranoid -1, and tracefs):"
        prof_why+=" $(head -n 1 <<<"$err")"
        return 0
    fi
    prof_on=1
    prof_events=raw_syscalls:sys_enter
    if perf stat -x, -o /dev/null -e syscalls:sys_enter_io_uring_enter -- true \
        >/dev/null 2>&1; then
        prof_enter_on=1
        prof_events+=,syscalls:sys_enter_io_uring_enter
    else
        prof_why="enter/op: the syscalls:sys_enter_io_uring_enter tracepoint is missing"
        prof_why+=" (kernel without CONFIG_FTRACE_SYSCALLS?)"
    fi
    prof_events+=,task-clock
    prof_wrap=(perf stat -x ',' -o "$prof_out" -e "$prof_events" --)
    # perf stat's control FIFO (perf 5.10 and later; bookworm has 6.1)
    sleep 30 &
    local sp=$!
    prof_start "$sp" 2>/dev/null
    if [[ -n $prof_t0 ]]; then
        prof_stop
    else
        prof_on=0
        prof_why="perf stat did not take --control fifo: here (perf 5.10 or later needed)"
    fi
    kill "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
}

# prof_note: say once how the columns are measured, or why they are n/a.
prof_note() {
    ((prof_noted)) && return 0
    prof_noted=1
    if ((prof_on)); then
        printf '(cpu_us/op: the server'"'"'s (program'"'"'s) CPU time per operation in the\n'
        printf ' measured runs; sys/op, enter/op: its system calls, and the io_uring_enter\n'
        printf ' calls among them, per operation, counted by perf stat in a separate run of\n'
        printf ' each figure (%ss): counting slows every system call on the machine, so the\n' "$prof_secs"
        printf ' measured runs are not counted%s)\n' "${prof_why:+; $prof_why}"
    else
        printf '(sys/op, enter/op: n/a: %s)\n' "$prof_why"
    fi
}

# The process and its children (nginx's workers, fio's jobs).
prof_family() {
    local p
    for p in "$@"; do
        echo "$p"
        pgrep -P "$p" 2>/dev/null || true
    done | paste -sd, -
}

# prof_start PID...: count the system calls of these processes (and their
# children now) from now until prof_stop. A no-op when counting is off.
#
# The window counted is known to the millisecond: perf stat starts with
# its counters off (-D -1) and turns them on and off when told through its
# control FIFO, answering "ack" when done; prof_wall is the time between
# the two answers (attaching alone took 0.1 s to over 1 s here, with the
# machine loaded).
prof_start() {
    prof_sys=- prof_enter=- prof_task_ms=- prof_wall=-
    ((prof_on)) || return 0
    : >"$prof_out"
    perf stat -x, -o "$prof_out" -D -1 \
        --control "fifo:$prof_dir/ctl,$prof_dir/ack" -e "$prof_events" \
        -p "$(prof_family "$@")" >/dev/null 2>&1 &
    prof_pid=$!
    # read-write opens of a FIFO do not wait for the other end
    exec {prof_ctl}<>"$prof_dir/ctl" {prof_ack}<>"$prof_dir/ack"
    if ! prof_tell enable; then
        prof_stop
        prof_sys=- prof_enter=- prof_task_ms=- prof_wall=-
        return 0
    fi
    prof_t0=$(date +%s.%N)
}

# prof_tell enable|disable: tell perf stat, wait for its "ack" (10 s).
prof_tell() {
    local a=
    echo "$1" >&"$prof_ctl" || return 1
    read -r -t 10 a <&"$prof_ack" || true
    [[ $a == ack* ]] || {
        echo "$prof_name: perf stat did not acknowledge '$1': nothing counted" >&2
        return 1
    }
}

# prof_stop: stop counting; sets prof_sys, prof_enter (counts, or "-"),
# prof_task_ms (the processes' CPU time, ms) and prof_wall (the seconds
# counted).
prof_stop() {
    [[ -n $prof_pid ]] || return 0
    if [[ -n $prof_t0 ]] && prof_tell disable; then
        prof_wall=$(awk -v a="$prof_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
    fi
    prof_t0=
    kill -INT "$prof_pid" 2>/dev/null || true
    wait "$prof_pid" 2>/dev/null || true # perf stat's status after SIGINT
    prof_pid=
    exec {prof_ctl}>&- {prof_ack}<&-
    prof_parse
}

prof_parse() {
    local v
    v=$(awk -F, '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ { print $1 }' "$prof_out")
    prof_sys=${v:--}
    if ((prof_enter_on)); then
        v=$(awk -F, '$3 == "syscalls:sys_enter_io_uring_enter" && $1 ~ /^[0-9]+$/ { print $1 }' "$prof_out")
        prof_enter=${v:--}
    fi
    v=$(awk -F, '$3 == "task-clock" && $1 ~ /^[0-9.]+$/ { print $1 }' "$prof_out")
    prof_task_ms=${v:--}
}

# prof_run CMD...: run a command with its system calls counted (and its
# children's: fio's jobs), its output on stdout; sets prof_sys,
# prof_enter, prof_task_ms. Without counting, runs it plainly.
prof_run() {
    prof_sys=- prof_enter=- prof_task_ms=-
    if ((prof_on)); then
        : >"$prof_out"
        local rc=0
        "${prof_wrap[@]}" "$@" || rc=$?
        prof_parse
        return "$rc"
    fi
    "$@"
}

# prof_per_op COUNT OPS [DIGITS]: COUNT / OPS, or n/a.
prof_per_op() {
    awk -v c="$1" -v n="$2" -v d="${3:-2}" 'BEGIN {
        if (c == "-" || c == "" || !(n > 0)) print "n/a"
        else printf "%.*f\n", d, c / n }'
}

# prof_row BENCH WORKLOAD IMPL ROLE RATE UNIT CPU_US_OP SYS_OP ENTER_OP
prof_row() {
    [[ -n ${WEFT_BENCH_TSV:-} ]] || return 0
    local f=$WEFT_BENCH_TSV a out=() first=1
    mkdir -p "$(dirname "$f")"
    if [[ ! -s $f ]]; then
        printf 'bench\tworkload\timpl\trole\trate\tunit\tcpu_us_op\tsys_op\tenter_op\n' >"$f"
    fi
    for a in "$@"; do
        [[ -z $a || $a == n/a ]] && a=-
        # one field: no tabs or blanks inside
        a=${a//$'\t'/_}
        a=${a// /_}
        if ((first)); then out=("$a") first=0; else out+=("$a"); fi
    done
    (IFS=$'\t'; echo "${out[*]}") >>"$f"
}

# prof_cleanup: called from the bench's exit trap.
prof_cleanup() {
    if [[ -n $prof_pid ]]; then
        kill -INT "$prof_pid" 2>/dev/null || true
        wait "$prof_pid" 2>/dev/null || true
        prof_pid=
    fi
    if [[ -n $prof_dir ]]; then rm -rf "$prof_dir"; fi
}
