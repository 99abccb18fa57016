# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# perf/ports.sh - ports for the servers a bench starts.
#
#   source "$here/ports.sh"
#
#   free_port          a TCP port on 127.0.0.1 that nothing listens on now
#   wait_port PORT [N] wait until 127.0.0.1:PORT accepts a connection, up
#                      to N tries 50 ms apart (default 100): status 0 once
#                      it does, 1 if it never did
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 tries=${2:-100}
    for _ in $(seq "$tries"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
