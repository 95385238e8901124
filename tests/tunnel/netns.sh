# shellcheck shell=bash
# Shell functions that build the simulated remote path: sourced by
# tests/tunnel/run and scripts/soak-tunnel (bash, as root).
#
#   home   the Pi: babymon serve on 192.168.1.23 (lan0, a veth whose other
#          end is also in home, standing in for the home LAN)
#   phone  a phone away from home: 10.77.0.2 on wan0, and one route, to the
#          Pi's address through the edge, as WARP installs it
#   edge   Cloudflare's edge and the tunnel, played by tests/tunnel/relay.py:
#          it owns the Pi's address on its loopback, so the phone's flows end
#          there, and re-originates each one inside home from the Pi's address
#
# No route and no link joins home to phone or edge: only the relay carries
# anything between them.

PI_ADDR=192.168.1.23
PHONE_ADDR=10.77.0.2
EDGE_ADDR=10.77.0.1
PI_PORT=8080
ICE_PORTS=50000-50009

NS_HOME=bm-home-$$
NS_PHONE=bm-phone-$$
NS_EDGE=bm-edge-$$
TUNNEL_WORK=$(mktemp -d /tmp/babymon-tunnel.XXXXXX)
RELAY_CTL=$TUNNEL_WORK/relay.ctl
SERVE_PID=
RELAY_PID=

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

tunnel_up() {
	echo "==> namespaces $NS_HOME, $NS_PHONE, $NS_EDGE"
	for ns in "$NS_HOME" "$NS_PHONE" "$NS_EDGE"; do
		ip netns add "$ns"
		in_ns "$ns" ip link set lo up
		in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip link add lan0 netns "$NS_HOME" type veth peer name lan1 netns "$NS_HOME"
	in_ns "$NS_HOME" ip addr add "$PI_ADDR/24" dev lan0
	in_ns "$NS_HOME" ip link set lan0 up
	in_ns "$NS_HOME" ip link set lan1 up

	ip link add wan0 netns "$NS_PHONE" type veth peer name wan1 netns "$NS_EDGE"
	in_ns "$NS_PHONE" ip addr add "$PHONE_ADDR/24" dev wan0
	in_ns "$NS_PHONE" ip link set wan0 up
	in_ns "$NS_PHONE" ip route add "$PI_ADDR/32" via "$EDGE_ADDR"
	in_ns "$NS_EDGE" ip addr add "$EDGE_ADDR/24" dev wan1
	in_ns "$NS_EDGE" ip link set wan1 up
	in_ns "$NS_EDGE" ip addr add "$PI_ADDR/32" dev lo
}

# stop_pid PID: TERM to a process this script started, and wait for it.
stop_pid() {
	[[ -n $1 ]] || return 0
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

tunnel_down() {
	stop_pid "$RELAY_PID"
	stop_pid "$SERVE_PID"
	RELAY_PID='' SERVE_PID=''
	for ns in "$NS_HOME" "$NS_PHONE" "$NS_EDGE"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$TUNNEL_WORK"
}

# start_serve BABYMON: babymon serve in home with the test pattern and a
# fixed ICE port range, which the relay carries; waits for /healthz.
start_serve() {
	local bin=$1
	cat >"$TUNNEL_WORK/babymon.toml" <<-EOF
		[camera]
		source = "test"
		width = 640
		height = 360
		framerate = 30

		[viewer]
		port = $PI_PORT
		ice_ports = "$ICE_PORTS"

		[leds]
		enabled = false
	EOF
	echo "==> babymon serve in $NS_HOME on $PI_ADDR:$PI_PORT (log: $TUNNEL_WORK/serve.log)"
	# `ip netns exec` itself, not in_ns (here and for the relay): a function
	# run with & is a subshell, and $! would name that shell, not serve.
	ip netns exec "$NS_HOME" "$bin" serve --config "$TUNNEL_WORK/babymon.toml" \
		>"$TUNNEL_WORK/serve.log" 2>&1 &
	SERVE_PID=$!
	for _ in $(seq 100); do
		if in_ns "$NS_HOME" curl -sf -o /dev/null "http://$PI_ADDR:$PI_PORT/healthz"; then
			return 0
		fi
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.2
	done
	echo "babymon serve did not become healthy; its log:" >&2
	cat "$TUNNEL_WORK/serve.log" >&2
	return 1
}

# start_relay [RELAY OPTION...]: the relay in edge, carrying the viewer port
# over TCP and the ICE range over TCP and UDP.
start_relay() {
	echo "==> relay in $NS_EDGE for $PI_ADDR (log: $TUNNEL_WORK/relay.log)"
	ip netns exec "$NS_EDGE" python3 tests/tunnel/relay.py --listen "$PI_ADDR" --target "$PI_ADDR" \
		--home-netns "/run/netns/$NS_HOME" --tcp "$PI_PORT,$ICE_PORTS" --udp "$ICE_PORTS" \
		--control "$RELAY_CTL" "$@" >"$TUNNEL_WORK/relay.out" 2>"$TUNNEL_WORK/relay.log" &
	RELAY_PID=$!
	for _ in $(seq 50); do
		grep -q '^ready$' "$TUNNEL_WORK/relay.out" 2>/dev/null && return 0
		kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "the relay did not start; its log:" >&2
	cat "$TUNNEL_WORK/relay.log" >&2
	return 1
}

# relay_cmd COMMAND: one command on the relay's control socket; prints its
# JSON answer.
relay_cmd() {
	python3 -c 'import socket,sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n"); print(s.makefile().readline().strip())' "$RELAY_CTL" "$1"
}
