#!/usr/bin/env bash
# A real Postfix on loopback as the benchmark peer (and the conformance
# suite's remote MX): its own config and queue under DIR, accepting mail for
# $POSTFIX_DOMAIN (default example.org) on 127.0.0.1:PORT and delivering it
# to maildirs under DIR/mail with the virtual(8) agent; other addresses in
# that domain are refused with 550 5.1.1. With $POSTFIX_RELAYHOST
# ([host]:port) it relays everything else from 127.0.0.0/8 there.
#   postfix.sh start DIR PORT ACCOUNT…   (ACCOUNT = local part)
#   postfix.sh stop DIR
#   postfix.sh count DIR                 (messages delivered so far)
set -euo pipefail
cmd=$1
dir=$2
domain=${POSTFIX_DOMAIN:-example.org}
case "$cmd" in
start)
    port=$3
    shift 3
    mkdir -p "$dir"/{conf,queue,data,mail}
    chmod 755 "$dir"
    uid=$(id -u postfix)
    gid=$(id -g postfix)
    : >"$dir/conf/vmailbox"
    for user in "$@"; do
        echo "$user@$domain $domain/$user/" >>"$dir/conf/vmailbox"
    done
    cat >"$dir/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
alias_maps =
alias_database =
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = $domain
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/conf/vmailbox
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_mailbox_limit = 0
message_size_limit = 0
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
relayhost = ${POSTFIX_RELAYHOST:-}
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 100
CF
    # The packaged master.cf, with smtpd on our port instead of port 25 and
    # no chroot (the queue is not where the chroot expects it).
    sed -e "s/^smtp      inet  n       -       y/127.0.0.1:$port inet n - n/" \
        -e 's/^\(\S\+\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y/\1n/' \
        /etc/postfix/master.cf >"$dir/conf/master.cf"
    chown -R "$uid:$gid" "$dir/mail" "$dir/data"
    # Postfix prints its errors only to a terminal when there is no syslog.
    script -qc "postfix -c $dir/conf start" /dev/null
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0
        sleep 0.1
    done
    echo "postfix did not start; its log:" >&2
    cat "$dir/maillog" >&2 || true
    exit 1
    ;;
stop)
    script -qc "postfix -c $dir/conf stop" /dev/null || true
    ;;
count)
    find "$dir/mail" -path '*/new/*' -type f | wc -l
    ;;
*)
    echo "usage: postfix.sh start DIR PORT ACCOUNT… | stop DIR | count DIR" >&2
    exit 2
    ;;
esac
