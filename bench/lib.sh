# Shared by bench/run.sh, bench/as/run.sh and bench/gw/run.sh: how a
# benchmark measures the CPU its servers (and the rest of the machine)
# used. Source it; it defines functions and CLK_TCK only.

CLK_TCK=$(getconf CLK_TCK)

proc_tree() { # pid and all its descendants
    local p
    echo "$1"
    for p in $(pgrep -P "$1" 2>/dev/null || true); do proc_tree "$p"; done
}

cpu_ticks() { # utime+stime of a process tree; threads are included in their process
    local total=0 p s f
    for p in $(proc_tree "$1"); do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) } # the command name may hold spaces: fields after ')'
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

sys_ticks() { # "busy total" ticks of the whole machine, from /proc/stat
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# openssl speed of ES256 into $T/logs/openssl-speed-TAG.txt, appended to
# SPEED_FILES (the caller declares SPEED_FILES=() and defines die).
measure_floor() { # tag
    local f=$T/logs/openssl-speed-$1.txt
    openssl speed -seconds "$FLOOR_SECONDS" ecdsap256 >"$f" 2>&1 || { cat "$f" >&2; die "openssl speed failed"; }
    SPEED_FILES+=("$f")
}
