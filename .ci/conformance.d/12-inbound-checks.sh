# Mail from other servers is checked and scored (swaks on the MX listener,
# SPF/DMARC records from dnsmasq): an SPF pass shows in the stored
# message's Authentication-Results (read back over IMAPS with imaplib), and
# a sender's own X-Spam-* fields are gone; a
# domain whose DMARC policy is reject is refused; an obvious spam gets
# 550 5.7.1 and a doubtful one lands in Junk, tagged. Sourced by
# .ci/conformance.
stored_header_has() {
    python3 - "${port[imaps]}" "$1" "$PASSWORD" "$2" "$3" <<'PY'
import imaplib, ssl, sys
port, user, password, mailbox, wanted = sys.argv[1:]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
imap = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=context)
imap.login(user, password)
imap.select(mailbox)
typ, found = imap.search(None, "ALL")
last = found[0].split()[-1]
typ, data = imap.fetch(last, "(BODY.PEEK[HEADER])")
header = data[0][1].decode()
for want in wanted.split("|"):
    if want.startswith("!"):
        assert want[1:] not in header, (want, header)
    else:
        assert want in header, (want, header)
PY
}
spf_pass_is_recorded() {
    # The sender's own spam verdict is dropped: only ours counts.
    "${mx[@]}" --from news@remote.test --to carol@example.org \
        --header 'Subject: checked' --header 'Message-Id: <checked@remote.test>' \
        --header 'X-Spam-Flag: FORGED' --body 'an ordinary note'
    stored_header_has carol@example.org INBOX 'spf=pass|smtp.mailfrom=news@remote.test|X-Spam-Status: No|!FORGED'
}
check "MX: SPF pass recorded in Authentication-Results, spam status No, forged X-Spam-* dropped" spf_pass_is_recorded
check "MX: DMARC p=reject with SPF fail gets 550 5.7.1" \
    expect '550 5\.7\.1 .*DMARC' "${mx[@]}" --from ceo@strict.test --to carol@example.org \
    --header 'From: ceo@strict.test' --body 'forged'
spam_is_refused() {
    local before
    before=$(inbox_count carol@example.org)
    # No Date or Message-ID, a display name posing as another address,
    # an HTML-only body whose link text shows another host than its
    # numeric href, spam phrases, shouting: far over the reject score.
    printf '%s\r\n' 'From: "service@bank.example" <x@remote.test>' 'To: carol@example.org' \
        'Subject: FREE VIAGRA!!! LOTTERY WINNER' 'Content-Type: text/html' '' \
        '<p>Click here!!! <a href="http://192.0.2.7/claim">http://www.bank.example/</a></p>' \
        '<p>100% free viagra, you are a lottery winner!!! Act now!!! Limited time offer, risk free!!!</p>' \
        >"$work/spam.eml"
    expect '550 5\.7\.1 Message rejected as spam' "${mx[@]}" --helo localhost --from x@remote.test \
        --to carol@example.org --data "$work/spam.eml"
    [ "$(inbox_count carol@example.org)" -eq "$before" ]
}
check "MX: an obvious spam gets 550 5.7.1 and is not stored" spam_is_refused
doubtful_goes_to_junk() {
    "${mx[@]}" --from offers@remote.test --to carol@example.org \
        --header 'Subject: YOU HAVE WON!!!' --header 'Message-Id: <won@remote.test>' \
        --body 'Click here to claim your prize.'
    stored_header_has carol@example.org Junk 'X-Spam-Flag: YES|X-Spam-Status: Yes'
}
check "MX: a doubtful message is tagged and delivered to Junk" doubtful_goes_to_junk
