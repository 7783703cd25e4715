#!/usr/bin/env bash
# OpenLDAP slapd on loopback as the benchmark peer: an mdb database for
# dc=example,dc=org under DIR, loaded offline with slapadd from an LDIF.
#   slapd.sh start DIR PORT LDIF   (LDIF holds the entries below the suffix)
#   slapd.sh stop DIR
set -euo pipefail
cmd=$1
dir=$2
case "$cmd" in
start)
    port=$3
    ldif=$4
    mkdir -p "$dir/db"
    cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
sizelimit unlimited
database mdb
maxsize 1073741824
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw bench-secret
directory $dir/db
index objectClass eq
index cn,sn,givenName,mail,uid eq,sub
access to * by * read
CONF
    {
        printf 'dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n'
        printf 'dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n'
        cat "$ldif"
    } >"$dir/all.ldif"
    slapadd -q -f "$dir/slapd.conf" -l "$dir/all.ldif"
    slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/"
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0
        sleep 0.1
    done
    echo "slapd did not start" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/slapd.pid" ] && kill "$(cat "$dir/slapd.pid")" 2>/dev/null || true
    ;;
*)
    echo "usage: slapd.sh start DIR PORT LDIF | stop DIR" >&2
    exit 2
    ;;
esac
