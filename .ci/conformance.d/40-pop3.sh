# POP3 with real clients: Python's poplib (STLS on the plain port, POP3_SSL
# on the implicit-TLS port) and curl (pop3:// with --ssl-reqd, pop3s://):
# list, unique ids, TOP, retrieval of a byte-stuffed line, deletion that
# lasts only through QUIT, the maildrop lock, and plaintext logins refused
# before TLS. Mail comes in over SMTP with swaks. Uses erin@example.org,
# whom the other parts leave alone. Sourced by .ci/conformance.
pop_user=erin@example.org
pop_curl=(curl -sS -k --max-time 20 -u "$pop_user:$PASSWORD")

pop_deliver() {
    swaks --server 127.0.0.1 --port "${port[smtp]}" --helo client.test --timeout 20 \
        --from sender@remote.test --to "$pop_user" --header "Subject: $1" \
        --body $'first line\n.dotted line\nlast line' >/dev/null
}
pop_setup() {
    pop_deliver 'pop3 one'
    pop_deliver 'pop3 two'
    [ "$(inbox_count "$pop_user")" -eq 2 ]
}
check "POP3: two messages delivered with swaks" pop_setup

check "POP3: poplib over STLS (CAPA, refused plaintext, STAT, LIST, UIDL, TOP, RETR)" \
    python3 - "${port[pop3]}" "$pop_user" "$PASSWORD" <<'PY'
import poplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3("127.0.0.1", port, timeout=20)
caps = p.capa()
assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
    assert cap in caps, (cap, caps)
try:
    p.user(user)
    raise AssertionError("USER accepted before STLS")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
p.stls(context=ctx)
caps = p.capa()
assert "USER" in caps and "SASL" in caps and "STLS" not in caps, caps
p.user(user)
p.pass_(password)
count, octets = p.stat()
assert count == 2 and octets > 0, (count, octets)
resp, listing, _ = p.list()
assert len(listing) == 2, listing
sizes = [int(line.split()[1]) for line in listing]
assert sum(sizes) == octets, (sizes, octets)
resp, uids, _ = p.uidl()
ids = [line.split()[1] for line in uids]
assert len(set(ids)) == 2, uids
resp, lines, _ = p.retr(1)
assert b".dotted line" in lines and b"first line" in lines, lines
assert sum(len(l) + 2 for l in lines) == sizes[0], (sum(len(l) + 2 for l in lines), sizes[0])
resp, top, _ = p.top(2, 1)
assert b"Subject: pop3 two" in top and b"first line" in top and b"last line" not in top, top
try:
    p.retr(3)
    raise AssertionError("RETR of a message that does not exist")
except poplib.error_proto as e:
    assert b"no such message" in e.args[0], e
p.quit()
PY

check "POP3S: poplib over implicit TLS, and the maildrop lock (IN-USE)" \
    python3 - "${port[pop3s]}" "$pop_user" "$PASSWORD" <<'PY'
import poplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
first = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=20)
first.user(user)
first.pass_(password)
assert first.stat()[0] == 2
second = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=20)
second.user(user)
try:
    second.pass_(password)
    raise AssertionError("a second session got the maildrop")
except poplib.error_proto as e:
    assert b"[IN-USE]" in e.args[0], e
second.quit()
# DELE without QUIT deletes nothing; RSET unmarks.
first.dele(1)
assert first.stat()[0] == 1
first.rset()
assert first.stat()[0] == 2
first.quit()
PY

check "POP3: a wrong password gets -ERR [AUTH]" \
    expect '\[AUTH\]' python3 - "${port[pop3s]}" "$pop_user" <<'PY'
import poplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
p.user(sys.argv[2])
try:
    p.pass_("wrong-password")
except poplib.error_proto as e:
    print(e.args[0].decode())
PY

pop_curl_list_and_retrieve() {
    local list body
    list=$("${pop_curl[@]}" --ssl-reqd "pop3://127.0.0.1:${port[pop3]}/")
    [ "$(grep -c '^[0-9]* [0-9]*' <<<"$list")" -eq 2 ] || { echo "LIST: $list"; return 1; }
    body=$("${pop_curl[@]}" "pop3s://127.0.0.1:${port[pop3s]}/2")
    grep -q '^Subject: pop3 two' <<<"$body" && grep -q '^\.dotted line' <<<"$body" ||
        { echo "RETR: $body"; return 1; }
}
check "POP3: curl lists (pop3:// STLS) and retrieves (pop3s://)" pop_curl_list_and_retrieve

pop_curl_delete() {
    "${pop_curl[@]}" --ssl-reqd -X DELE -I "pop3://127.0.0.1:${port[pop3]}/1" >/dev/null
    # Gone after curl's QUIT, for good.
    [ "$(inbox_count "$pop_user")" -eq 1 ] || { echo "INBOX: $(inbox_count "$pop_user")"; return 1; }
    python3 - "${port[pop3s]}" "$pop_user" "$PASSWORD" <<'PY'
import poplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
p.user(sys.argv[2])
p.pass_(sys.argv[3])
assert p.stat()[0] == 1
resp, top, _ = p.top(1, 0)
assert b"Subject: pop3 two" in top, top
p.quit()
PY
}
check "POP3: curl DELE, then QUIT, removes the message durably" pop_curl_delete

# fetchmail over STLS, checking the certificate against the appliance's own
# (host name localhost, as its certificate names it), delivering to a file
# and keeping the message on the server.
pop_fetchmail() {
    local rc="$work/fetchmailrc" got="$work/fetchmail.mbox"
    cat >"$rc" <<RC
poll localhost protocol POP3 service ${port[pop3]}
    user "$pop_user" there with password "$PASSWORD"
    sslproto 'TLS1.2+' sslcertck sslcertfile "$work/data/tls/cert.pem"
    keep mda "/bin/sh -c 'cat >> $got'"
RC
    chmod 600 "$rc"
    fetchmail --nosyslog --nodetach --idfile "$work/fetchids" -f "$rc" 2>&1 || return 1
    grep -q '^Subject: pop3 two' "$got" || { echo "fetched:"; cat "$got"; return 1; }
    # Kept: still one message on the server.
    [ "$(inbox_count "$pop_user")" -eq 1 ]
}
check "POP3: fetchmail (STLS, certificate checked) retrieves and keeps" pop_fetchmail
