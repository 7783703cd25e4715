# SMTP with swaks (a real client): inbound MX delivery, the relay and
# unknown-user refusals, submission with STARTTLS and AUTH, SIZE and
# pipelining. Sourced by .ci/conformance.
mx=(swaks --server 127.0.0.1 --port "${port[smtp]}" --helo client.test --timeout 20)
sub=(swaks --server 127.0.0.1 --port "${port[submission]}" --helo client.test --timeout 20)

mx_delivers_to_local_accounts_and_lists() {
    local before_a before_b
    before_a=$(inbox_count alice@example.org)
    before_b=$(inbox_count bob@example.org)
    "${mx[@]}" --from sender@remote.test --to alice@example.org,ali@example.org,team@example.org \
        --header 'Subject: conformance' --body 'hello from swaks'
    # alice is named three times (address, alias, list): stored once.
    [ "$(inbox_count alice@example.org)" -eq $((before_a + 1)) ]
    [ "$(inbox_count bob@example.org)" -eq $((before_b + 1)) ]
}
check "MX: delivery to an account, its alias and a list (stored once each)" mx_delivers_to_local_accounts_and_lists
check "MX: unknown user gets 550 5.1.1" \
    expect '550 5\.1\.1' "${mx[@]}" --from s@remote.test --to nobody@example.org --quit-after RCPT
check "MX: relaying to another domain gets 550 5.7.1" \
    expect '550 5\.7\.1' "${mx[@]}" --from s@remote.test --to victim@elsewhere.test --quit-after RCPT
mx_offers_no_auth() {
    "${mx[@]}" --quit-after EHLO >"$work/ehlo.log" 2>&1
    grep -q '250.PIPELINING' "$work/ehlo.log" && ! grep -q '250.AUTH' "$work/ehlo.log"
}
check "MX: EHLO offers PIPELINING and no AUTH" mx_offers_no_auth
# Python's smtplib as a second client: SIZE declared over the limit.
check "MX: SIZE over the limit gets 552 5.3.4 (smtplib)" python3 - "${port[smtp]}" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.test")
code, text = s.mail("s@remote.test", ["SIZE=999999999999"])
assert code == 552 and text.startswith(b"5.3.4"), (code, text)
s.quit()
PY
check "MX: pipelined transaction" \
    "${mx[@]}" --pipeline --from s@remote.test --to bob@example.org --body 'pipelined'

check "submission: AUTH before STARTTLS gets 530 5.7.0" \
    expect '530 5\.7\.0' "${sub[@]}" --from alice@example.org --to bob@example.org \
    --auth PLAIN --auth-user alice@example.org --auth-password "$PASSWORD" --auth-optional-strict
check "submission: STARTTLS + AUTH PLAIN delivers" \
    "${sub[@]}" --tls --auth PLAIN --auth-user alice@example.org --auth-password "$PASSWORD" \
    --from alice@example.org --to bob@example.org --body 'submitted (PLAIN)'
check "submission: STARTTLS + AUTH LOGIN, sending as an alias" \
    "${sub[@]}" --tls --auth LOGIN --auth-user alice@example.org --auth-password "$PASSWORD" \
    --from ali@example.org --to carol@example.org --body 'submitted (LOGIN)'
check "submission: a wrong password gets 535 5.7.8" \
    expect '535 5\.7\.8' "${sub[@]}" --tls --auth PLAIN --auth-user alice@example.org \
    --auth-password wrong-password --from alice@example.org --to bob@example.org
check "submission: a sender the account does not own gets 553 5.7.1" \
    expect '553 5\.7\.1' "${sub[@]}" --tls --auth PLAIN --auth-user alice@example.org \
    --auth-password "$PASSWORD" --from bob@example.org --to carol@example.org --quit-after MAIL
check "SMTPS: implicit TLS + AUTH delivers" \
    swaks --server 127.0.0.1 --port "${port[smtps]}" --tls-on-connect --helo client.test \
    --auth PLAIN --auth-user bob@example.org --auth-password "$PASSWORD" \
    --from bob@example.org --to alice@example.org --body 'over SMTPS'
submission_with_an_app_password() {
    local app
    app=$(admin --json account app-password add bob@example.org mail-client |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')
    [ -n "$app" ]
    "${sub[@]}" --tls --auth LOGIN --auth-user bob@example.org --auth-password "$app" \
        --from bob@example.org --to carol@example.org --body 'sent with an app password'
    # Deleted, it no longer logs in.
    admin account app-password delete bob@example.org mail-client >/dev/null
    expect '535 5\.7\.8' "${sub[@]}" --tls --auth LOGIN --auth-user bob@example.org \
        --auth-password "$app" --from bob@example.org --to carol@example.org
}
check "submission: an app password logs in until it is deleted" submission_with_an_app_password
eicar_is_refused() {
    local before
    before=$(inbox_count carol@example.org)
    # The EICAR test file, as an attachment (swaks base64-encodes it).
    printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$work/eicar.com"
    expect '554 5\.7\.1 Message rejected: virus found \(Eicar-Test-Signature\)' \
        "${mx[@]}" --from s@remote.test --to carol@example.org \
        --attach-type application/octet-stream --attach @"$work/eicar.com"
    [ "$(inbox_count carol@example.org)" -eq "$before" ]
}
check "MX: a message carrying EICAR gets 554 5.7.1 and is not stored" eicar_is_refused
