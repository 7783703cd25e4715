# The anti-virus with ClamAV's clamd behind it (started by .ci/conformance
# with a database of one custom signature), through swaks on the MX
# listener: a clean attachment passes both scanners; EICAR (the built-in
# scanner's find) and the custom signature (clamd's: the built-in scanner
# does not know it) get 554 5.7.1 and are not stored; /metrics counts
# clamd's results. Sourced by .ci/conformance.
av_clean_passes_clamd() {
    local before
    before=$(inbox_count dave@example.org)
    printf '%s\n' 'an ordinary attachment' >"$work/clean.txt"
    "${mx[@]}" --from s@remote.test --to dave@example.org \
        --attach-type text/plain --attach @"$work/clean.txt"
    [ "$(inbox_count dave@example.org)" -eq $((before + 1)) ]
}
check "AV: a clean attachment passes the built-in scanner and clamd" av_clean_passes_clamd
av_refused() {
    local pattern=$1 file=$2 before
    before=$(inbox_count dave@example.org)
    expect "$pattern" "${mx[@]}" --from s@remote.test --to dave@example.org \
        --attach-type application/octet-stream --attach @"$file"
    [ "$(inbox_count dave@example.org)" -eq "$before" ]
}
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$work/eicar.com"
check "AV: EICAR gets 554 5.7.1 with clamd configured, not stored" \
    av_refused '554 5\.7\.1 Message rejected: virus found \(Eicar-Test-Signature\)' "$work/eicar.com"
printf '%s\n' 'payload cairn-conformance-clamd-marker payload' >"$work/marker.bin"
check "AV: clamd's custom signature gets 554 5.7.1, not stored" \
    av_refused '554 5\.7\.1 Message rejected: virus found \(Cairn\.Conformance\.UNOFFICIAL\)' "$work/marker.bin"
av_metrics() {
    curl -fsS "http://127.0.0.1:${port[http]}/metrics" >"$work/av-metrics.txt"
    grep -Eq '^cairn_smtp_clamd_scans_total\{result="clean"\} [1-9]' "$work/av-metrics.txt"
    grep -Eq '^cairn_smtp_clamd_scans_total\{result="infected"\} [1-9]' "$work/av-metrics.txt"
    grep -Eq '^cairn_smtp_clamd_scans_total\{result="failed"\} 0' "$work/av-metrics.txt"
}
check "AV: /metrics counts clamd's scans" av_metrics
