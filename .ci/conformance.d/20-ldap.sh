# LDAP with ldapsearch and ldapmodify (OpenLDAP's clients): bind, the
# address-book searches, paged results, StartTLS and LDAPS, the root DSE,
# refusals, a service account's bind. Sourced by .ci/conformance.
ldap_url="ldap://127.0.0.1:${port[ldap]}"
bind_dn='uid=alice,ou=people,dc=example,dc=org'
search=(ldapsearch -x -LLL -o nettimeout=20 -H "$ldap_url" -D "$bind_dn" -w "$PASSWORD")

check "LDAP: bind and find an account by mail" \
    expect '^mail: alice@example.org' "${search[@]}" -b dc=example,dc=org '(mail=alice*)' mail
check "LDAP: address-book substring search (Thunderbird's filter)" \
    expect '^uid: bob' "${search[@]}" -b dc=example,dc=org '(|(cn=*bo*)(mail=*bo*)(sn=*bo*)(givenName=*bo*))' uid
check "LDAP: distribution list as a group" \
    expect '^cn: team' "${search[@]}" -b ou=groups,dc=example,dc=org '(objectClass=groupOfNames)' cn member
check "LDAP: paged results (pr=1)" \
    expect 'pagedresults: cookie=$' "${search[@]}" -b ou=people,dc=example,dc=org -E pr=1/noprompt '(objectClass=inetOrgPerson)' uid
check "LDAP: root DSE names the domain" \
    expect '^namingContexts: dc=example,dc=org' ldapsearch -x -LLL -H "$ldap_url" -D "$bind_dn" -w "$PASSWORD" -s base -b '' '(objectClass=*)' namingContexts
check "LDAP: StartTLS (-ZZ)" \
    env LDAPTLS_REQCERT=never "${search[@]}" -ZZ -b dc=example,dc=org '(uid=carol)' uid
check "LDAPS: implicit TLS" \
    env LDAPTLS_REQCERT=never ldapsearch -x -LLL -H "ldaps://127.0.0.1:${port[ldaps]}" -D "$bind_dn" -w "$PASSWORD" -b dc=example,dc=org '(uid=bob)' uid
check "LDAP: a wrong password gets invalidCredentials (49)" \
    expect 'Invalid credentials \(49\)' ldapsearch -x -H "$ldap_url" -D "$bind_dn" -w wrong -b dc=example,dc=org '(uid=*)'
check "LDAP: anonymous search is refused by default" \
    expect '\((48|50)\)' ldapsearch -x -H "$ldap_url" -b dc=example,dc=org '(uid=*)'
service_account() {
    local reader='cn=book-reader,ou=services,dc=example,dc=org'
    printf '%s\n' "$PASSWORD" | admin service-account add book-reader --password-stdin --description 'address book' >/dev/null
    expect '^mail: alice@example.org' ldapsearch -x -LLL -o nettimeout=20 -H "$ldap_url" -D "$reader" -w "$PASSWORD" -b dc=example,dc=org '(mail=alice*)' mail
}
check "LDAP: a service account (cn=…,ou=services) binds and searches" service_account
check "LDAP: a service account's wrong password gets invalidCredentials (49)" \
    expect 'Invalid credentials \(49\)' ldapsearch -x -H "$ldap_url" -D 'cn=book-reader,ou=services,dc=example,dc=org' -w wrong -b dc=example,dc=org '(uid=*)'
check "audit: the service account and the failed bind are in the trail" \
    expect 'auth.failed +service:book-reader' admin audit --limit 5
modify_refused() {
    printf 'dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: sn\nsn: X\n' >"$work/mod.ldif"
    expect 'Server is unwilling to perform \(53\)' ldapmodify -x -H "$ldap_url" -D "$bind_dn" -w "$PASSWORD" -f "$work/mod.ldif"
}
check "LDAP: writes get unwillingToPerform (53)" modify_refused
lockout() {
    local dave='uid=dave,ou=people,dc=example,dc=org' i
    # limits.max_auth_failures (10) wrong passwords lock the account out …
    for i in $(seq 1 10); do
        ldapsearch -x -H "$ldap_url" -D "$dave" -w "wrong-$i" -s base -b '' >/dev/null 2>&1 || true
    done
    # … so that even the right one is refused now, and /metrics counts it.
    expect 'Invalid credentials \(49\)' ldapsearch -x -H "$ldap_url" -D "$dave" -w "$PASSWORD" -s base -b ''
    curl -fsS "http://127.0.0.1:${port[http]}/metrics" | grep -E '^cairn_auth_attempts_total\{result="throttled"\} [1-9]'
}
check "LDAP: repeated bad passwords lock the account out (and /metrics shows it)" lockout
