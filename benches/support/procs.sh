# benches/support/procs.sh: starting and stopping the processes a bench
# script measures. Sourced by benches/load.sh and benches/instructions.sh,
# which set WORK (a scratch directory), READY_TIMEOUT (seconds) and die().
#
#   start NAME CMD...    runs CMD in the background, logging to $WORK/NAME.log;
#                        its pid is in PID_NAME
#   wait_ready NAME PORT polls until 127.0.0.1:PORT accepts connections
#   stop NAME            SIGINT, then SIGKILL after 3 s
#   stop_all             stop every process started (the scripts' EXIT trap)
#   cpu_ticks PID        user + system clock ticks (1/CLK_TCK s) of all its
#                        threads so far
#
# SIGINT is Pingora's fast shutdown; SIGTERM would wait out its grace period.

PIDS=()

# Succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    eval "PID_$name=$!"
}

wait_ready() {
    local name=$1 port=$2 pid_var="PID_$1" i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if ! kill -0 "${!pid_var}" 2>/dev/null; then
            tail -n 20 "$WORK/$name.log" >&2 || true
            die "$name exited before listening on 127.0.0.1:$port"
        fi
        port_open "$port" && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.log" >&2 || true
    die "$name is not listening on 127.0.0.1:$port after ${READY_TIMEOUT}s"
}

# stop_pid PID: SIGINT, SIGKILL after 3 s, then reap.
stop_pid() {
    local i
    kill -INT "$1" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

stop() {
    local pid_var="PID_$1"
    stop_pid "${!pid_var}"
}

# The fields after the parenthesised command name, which may hold spaces.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
}
