# The outbound queue against a real Postfix as the remote MX of remote.test
# (found through dnsmasq's MX record): swaks submits, Postfix stores in its
# maildirs; an address Postfix refuses comes back to the sender as an RFC
# 3464 report read over IMAPS (imaplib); with Postfix stopped the message
# waits in `cairn admin queue list` until `cairn admin queue retry`. The
# DKIM signature Cairn adds verifies with dkimpy. Sourced by .ci/conformance.
sender=olga@example.org
admin account add "$sender" --password "$PASSWORD" >/dev/null
postfix_dir=$work/postfix
# Postfix's own user must reach its folders (traverse only, nothing listed).
chmod 711 "$work"
out_sub=("${sub[@]}" --tls --auth PLAIN --auth-user "$sender" --auth-password "$PASSWORD" --from "$sender")
POSTFIX_DOMAIN=remote.test bash benches/peers/postfix.sh start "$postfix_dir" "${port[remote_mx]}" carol >/dev/null

remote_count() { bash benches/peers/postfix.sh count "$postfix_dir"; }
# wait_for SECONDS COMMAND…: retries the command every half second.
wait_for() {
    local tries=$(($1 * 2))
    shift
    for _ in $(seq 1 "$tries"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    "$@"
}
remote_has() { [ "$(remote_count)" -ge "$1" ]; }
queue_empty() { [ "$(admin --json queue list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')" -eq 0 ]; }

dkim_record=
make_dkim_key() {
    admin domain dkim example.org --algorithm rsa >"$work/dkim.txt"
    dkim_record=$(admin --json domain dkim example.org --show |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["record_name"], d["record"], sep="\n")')
    [ -n "$dkim_record" ]
}
check "outbound: cairn admin domain dkim makes a key and prints its TXT record" make_dkim_key

delivered_to_postfix() {
    "${out_sub[@]}" --to carol@remote.test --header 'Subject: outbound conformance' \
        --body 'to a remote MX through the queue'
    wait_for 30 remote_has 1
    wait_for 30 queue_empty
    grep -rlq 'Subject: outbound conformance' "$postfix_dir/mail/remote.test/carol/new"
}
check "outbound: submission to a remote domain is delivered to Postfix (MX from dnsmasq)" delivered_to_postfix

dkim_verifies() {
    local file
    file=$(grep -rl 'Subject: outbound conformance' "$postfix_dir/mail/remote.test/carol/new" | head -1)
    python3 - "$file" "$dkim_record" <<'PY'
import sys, dkim
message = open(sys.argv[1], "rb").read()
name, record = sys.argv[2].split("\n", 1)
def dns(qname, timeout=5):
    asked = qname.decode().rstrip(".")
    return record.encode() if asked == name.rstrip(".") else b""
assert b"DKIM-Signature:" in message, "no signature"
assert dkim.verify(message, dnsfunc=dns), "dkimpy: the signature does not verify"
PY
}
check "outbound: the DKIM signature verifies with dkimpy" dkim_verifies

bounce_reaches_sender() {
    "${out_sub[@]}" --to nobody@remote.test --header 'Subject: to be bounced' --body 'no such user there'
    wait_for 30 queue_empty
    python3 - "${port[imaps]}" "$sender" "$PASSWORD" <<'PY'
import imaplib, ssl, sys, time
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
for _ in range(60):
    imap = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=context)
    imap.login(sys.argv[2], sys.argv[3])
    imap.select("INBOX")
    typ, found = imap.search(None, 'SUBJECT "Undelivered Mail"')
    if found[0]:
        typ, data = imap.fetch(found[0].split()[-1], "(BODY[])")
        report = data[0][1].decode()
        for want in ("report-type=delivery-status", "Action: failed", "Status: 5.1.1",
                     "Final-Recipient: rfc822; nobody@remote.test", "Remote-MTA: dns; mx.remote.test",
                     "Subject: to be bounced"):
            assert want in report, (want, report)
        sys.exit(0)
    imap.logout()
    time.sleep(0.5)
sys.exit("no delivery status notification arrived")
PY
}
check "outbound: Postfix's 550 comes back to the sender as a DSN (imaplib)" bounce_reaches_sender

relay_network_relays() {
    local before
    before=$(remote_count)
    # From 127.0.0.1 (not a relay network) the MX refuses other domains …
    expect '550 5\.7\.1' "${mx[@]}" --from s@partner.test --to carol@remote.test --quit-after RCPT
    # … from 127.0.0.2 (relay_networks) it queues them without AUTH.
    "${mx[@]}" --local-interface 127.0.0.2 --from s@partner.test --to carol@remote.test \
        --header 'Subject: relayed' --body 'through the relay network'
    wait_for 30 remote_has $((before + 1))
}
check "outbound: an MX client in relay_networks relays to Postfix; others get 550 5.7.1" relay_network_relays

retried_after_postfix_restart() {
    local before
    before=$(remote_count)
    bash benches/peers/postfix.sh stop "$postfix_dir" >/dev/null
    "${out_sub[@]}" --to carol@remote.test --header 'Subject: while postfix was down' --body 'retried'
    wait_for 30 expect '4\.4\.[12]' admin queue list
    POSTFIX_DOMAIN=remote.test bash benches/peers/postfix.sh start "$postfix_dir" "${port[remote_mx]}" carol >/dev/null
    expect 'retried [1-9]' admin queue retry
    wait_for 30 remote_has $((before + 1))
    wait_for 30 queue_empty
}
check "outbound: Postfix down, the message waits in the queue; a retry delivers it" retried_after_postfix_restart
