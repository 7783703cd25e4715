# TLS on the mail-access ports with testssl.sh (a real scanner): IMAPS and
# POP3S (implicit TLS) and IMAP and POP3 STARTTLS. Each must offer TLS 1.2
# and 1.3 only, and no vulnerability testssl knows may show. Sourced by
# .ci/conformance.
tls_scan() {
    local target=$1
    shift
    testssl --quiet --color 0 --nodns none --warnings batch --protocols --vulnerable \
        "$@" "$target" >"$work/testssl.log" 2>&1 || true
    local want
    for want in 'SSLv2 +not offered' 'SSLv3 +not offered' 'TLS 1 +not offered' \
        'TLS 1\.1 +not offered' 'TLS 1\.2 +offered' 'TLS 1\.3 +offered'; do
        grep -Eq "^ $want" "$work/testssl.log" || { echo "no line /$want/"; cat "$work/testssl.log"; return 1; }
    done
    if grep -q 'VULNERABLE' "$work/testssl.log"; then
        grep 'VULNERABLE' "$work/testssl.log"
        return 1
    fi
}
check "TLS: testssl on IMAPS" tls_scan "127.0.0.1:${port[imaps]}"
check "TLS: testssl on POP3S" tls_scan "127.0.0.1:${port[pop3s]}"
check "TLS: testssl on IMAP STARTTLS" tls_scan "127.0.0.1:${port[imap]}" -t imap
check "TLS: testssl on POP3 STLS" tls_scan "127.0.0.1:${port[pop3]}" -t pop3
