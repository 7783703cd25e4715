#!/usr/bin/env bash
# Dovecot 2.3 (Debian dovecot-imapd) on loopback as the IMAP benchmark peer:
# its own configuration, base_dir, state and log under DIR, plain-text IMAP on
# 127.0.0.1:PORT (no TLS, cleartext LOGIN allowed), passwd-file auth, and
# maildirs under DIR/mail/USER/Maildir owned by `nobody`.
#   dovecot.sh start DIR PORT PASSWORD USER…   (USER = full login name)
#   dovecot.sh stop DIR
# The master's pid is in DIR/run/master.pid; every other process is its child.
# FSYNC (environment, default `optimized`, Dovecot's own default) sets
# mail_fsync: `optimized` fsyncs each saved message file but not the index
# files; `always` fsyncs those too.  IMAP_CLIENT_LIMIT (default 1, Dovecot's
# default: one imap process per logged-in connection) sets
# service imap { client_limit }.  LOGIN_MODE=performance (default
# `security`, Dovecot's default: a new imap-login process for every
# connection) keeps two long-lived imap-login processes that serve many
# connections each (service_count = 0), as Dovecot's docs suggest for speed.
set -euo pipefail
cmd=${1:-}
dir=${2:-}
case "$cmd" in
start)
    port=$3
    password=$4
    shift 4
    if ! command -v dovecot >/dev/null; then
        # Installed without starting a service (policy-rc.d says no).
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
    fi
    fsync=${FSYNC:-optimized}
    client_limit=${IMAP_CLIENT_LIMIT:-1}
    login_tuning=""
    if [ "${LOGIN_MODE:-security}" = performance ]; then
        login_tuning="service_count = 0
  process_min_avail = $(nproc)
  vsz_limit = 1G"
    fi
    mkdir -p "$dir"/{run,state,mail}
    chmod 755 "$dir"
    uid=$(id -u nobody)
    gid=$(id -g nobody)
    : >"$dir/passwd"
    for user in "$@"; do
        # PASSWORD_HASH (an argon2id PHC string) makes Dovecot verify the
        # password as Cairn does; without it the password is stored plain.
        if [ -n "${PASSWORD_HASH:-}" ]; then
            echo "$user:{ARGON2ID}$PASSWORD_HASH" >>"$dir/passwd"
        else
            echo "$user:{PLAIN}$password" >>"$dir/passwd"
        fi
    done
    cat >"$dir/dovecot.conf" <<CONF
# Written by benches/peers/dovecot.sh for the IMAP benchmark.
protocols = imap
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
instance_name = dovecot-bench-$port
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%u/Maildir
mail_uid = $uid
mail_gid = $gid
first_valid_uid = 1
mail_fsync = $fsync
mail_max_userip_connections = 100000
default_process_limit = 20000
default_client_limit = 19000
default_vsz_limit = 256M
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
  # By default one imap-login process per connection while it logs in
  # (high-security mode); after LOGIN the connection moves to an imap
  # process.
  process_limit = 4000
  $login_tuning
}
service imap-urlauth-login {
  process_limit = 10
}
service imap {
  process_limit = 20000
  client_limit = $client_limit
}
service anvil {
  client_limit = 19000
}
service auth {
  client_limit = 19000
}
CONF
    chown -R "$uid:$gid" "$dir/mail"
    # Each connection holds descriptors in the master and the login and imap
    # processes; 10,000 connections need more than the default 1024.
    ulimit -n "$(ulimit -Hn)"
    dovecot -c "$dir/dovecot.conf"
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0
        sleep 0.1
    done
    echo "dovecot did not start; its log:" >&2
    cat "$dir/dovecot.log" >&2 || true
    exit 1
    ;;
stop)
    if [ -f "$dir/dovecot.conf" ]; then
        dovecot -c "$dir/dovecot.conf" stop 2>/dev/null || true
    fi
    ;;
*)
    echo "usage: dovecot.sh start DIR PORT PASSWORD USER… | stop DIR" >&2
    exit 2
    ;;
esac
