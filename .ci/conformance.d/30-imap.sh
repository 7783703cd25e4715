# IMAP with real clients: Python's imaplib (STARTTLS and IMAPS, one script
# per extension), curl's IMAP, and mbsync (isync) syncing a mailbox both
# ways. Mail comes in over SMTP (swaks), as a user's would. Sourced by
# .ci/conformance.
cert="$work/data/tls/cert.pem"
export IMAP_PORT=${port[imap]} IMAPS_PORT=${port[imaps]} SMTP_PORT=${port[smtp]} PASSWORD CERT=$cert

# The Python checks share a few helpers: a STARTTLS login as a user, and
# delivering over SMTP.
cat >"$work/imapcheck.py" <<'PY'
import imaplib, os, re, smtplib, ssl, sys
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
PORT, SPORT, SMTP = int(os.environ["IMAP_PORT"]), int(os.environ["IMAPS_PORT"]), int(os.environ["SMTP_PORT"])
PW = os.environ["PASSWORD"]
CTX = ssl.create_default_context(cafile=os.environ["CERT"])

def login(user, tls="starttls"):
    if tls == "implicit":
        c = imaplib.IMAP4_SSL("localhost", SPORT, ssl_context=CTX, timeout=20)
    else:
        c = imaplib.IMAP4("localhost", PORT, timeout=20)
        c.starttls(ssl_context=CTX)
    c.login(user, PW)
    return c

def deliver(to, subject, body="hello", extra=""):
    s = smtplib.SMTP("127.0.0.1", SMTP, timeout=20)
    msg = f"From: sender@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n"
    s.sendmail("sender@remote.test", [to], msg)
    s.quit()

def ok(resp, what):
    typ, data = resp
    assert typ == "OK", (what, typ, data)
    return data
PY
imap_py() { PYTHONPATH="$work" python3 - "$@"; }

check "IMAP: LOGINDISABLED before STARTTLS, login refused in clear" imap_py <<'PY'
import imaplib
from imapcheck import *
c = imaplib.IMAP4("localhost", PORT, timeout=20)
caps = c.capabilities
assert "STARTTLS" in caps and "LOGINDISABLED" in caps, caps
try:
    c.login("alice@example.org", PW)
    raise SystemExit("a clear-text login was accepted")
except imaplib.IMAP4.error:
    pass
c.starttls(ssl_context=CTX)
c.login("alice@example.org", PW)
c.logout()
PY

check "IMAP: wrong password gets NO [AUTHENTICATIONFAILED]" imap_py <<'PY'
import imaplib
from imapcheck import *
c = imaplib.IMAP4("localhost", PORT, timeout=20)
c.starttls(ssl_context=CTX)
try:
    c.login("alice@example.org", "wrong-password")
    raise SystemExit("accepted")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
PY

check "IMAP: mail delivered over SMTP is read over IMAPS (select, search, fetch)" imap_py <<'PY'
from imapcheck import *
deliver("carol@example.org", "read me over imap", "line one\r\nline two")
c = login("carol@example.org", tls="implicit")
n = int(ok(c.select("INBOX"), "select")[0])
assert n >= 1, n
uids = ok(c.uid("SEARCH", None, 'SUBJECT "read me over imap"'), "search")[0].split()
assert len(uids) == 1, uids
data = ok(c.uid("FETCH", uids[0], "(FLAGS ENVELOPE BODY.PEEK[TEXT] RFC822.SIZE)"), "fetch")
text = b"".join(p if isinstance(p, bytes) else b"".join(p) for p in data)
assert b"read me over imap" in text and b"line two" in text, text
assert b"\\Seen" not in text, "PEEK must not set \\Seen"
data = ok(c.uid("FETCH", uids[0], "(BODY[HEADER.FIELDS (SUBJECT)])"), "fetch")
assert data[0][1].strip() == b"Subject: read me over imap", data
data = ok(c.uid("FETCH", uids[0], "(FLAGS)"), "flags")
assert b"\\Seen" in data[0], data
c.logout()
PY

check "IMAP: LIST with SPECIAL-USE, CREATE/RENAME/DELETE, STATUS" imap_py <<'PY'
from imapcheck import *
c = login("carol@example.org")
lines = b"\n".join(ok(c.list(), "list"))
for flag, name in [(b"\\Sent", b"Sent"), (b"\\Trash", b"Trash"), (b"\\Drafts", b"Drafts"), (b"\\Junk", b"Junk")]:
    assert any(flag in l and name in l for l in lines.split(b"\n")), (flag, lines)
ok(c.create("Projects/2026"), "create")
ok(c.rename("Projects", "Work"), "rename")
names = b"\n".join(ok(c.list(), "list"))
assert b"Work/2026" in names and b"Projects" not in names, names
typ, data = c.select("Nope")
assert typ == "NO" and b"NONEXISTENT" in data[0], data
ok(c.delete("Work/2026"), "delete")
data = ok(c.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"), "status")
assert re.search(rb"MESSAGES \d+ UIDNEXT \d+ UIDVALIDITY \d+ UNSEEN \d+", data[0]), data
c.logout()
PY

check "IMAP: APPEND (APPENDUID), STORE, COPY (COPYUID), MOVE, EXPUNGE" imap_py <<'PY'
import imaplib
from imapcheck import *
c = login("carol@example.org")
typ, data = c.append("Drafts", "(\\Draft)", None, b"Subject: draft\r\n\r\nbody\r\n")
assert typ == "OK" and b"APPENDUID" in data[0], data
ok(c.select("Drafts"), "select")
ok(c.store("1", "+FLAGS", "(\\Flagged)"), "store")
data = ok(c.fetch("1", "(FLAGS)"), "fetch")
assert b"\\Flagged" in data[0] and b"\\Draft" in data[0], data
typ, data = c.copy("1", "Archive")
assert typ == "OK" and b"COPYUID" in data[0], data
typ, data = c._simple_command("MOVE", "1", "Trash")
assert typ == "OK", (typ, data)
assert int(ok(c.select("Drafts"), "select")[0]) == 0
assert int(ok(c.select("Archive"), "select")[0]) >= 1
ok(c.store("1:*", "+FLAGS", "(\\Deleted)"), "store")
ok(c.expunge(), "expunge")
assert int(ok(c.select("Archive"), "select")[0]) == 0
c.logout()
PY

check "IMAP: IDLE wakes on an SMTP delivery" imap_py <<'PY'
import socket, time
from imapcheck import *
c = login("bob@example.org")
n = int(ok(c.select("INBOX"), "select")[0])
c.send(b"I1 IDLE\r\n")
assert c.readline().startswith(b"+"), "no continuation"
t0 = time.time()
deliver("bob@example.org", "wake up")
line = c.readline()
assert line.strip() == f"* {n + 1} EXISTS".encode(), line
print(f"EXISTS {1000 * (time.time() - t0):.1f} ms after the delivery started")
c.send(b"DONE\r\n")
while not (line := c.readline()).startswith(b"I1 "):
    assert line.startswith(b"* "), line
assert line.startswith(b"I1 OK"), line
c.logout()
PY

check "IMAP: CONDSTORE (MODSEQ, UNCHANGEDSINCE) and QRESYNC (VANISHED)" imap_py <<'PY'
from imapcheck import *
for i in range(3):
    deliver("carol@example.org", f"condstore {i}")
c = login("carol@example.org")
ok(c._simple_command("ENABLE", "CONDSTORE", "QRESYNC"), "enable")
typ, data = c._simple_command("SELECT", "INBOX", "(CONDSTORE)")
assert typ == "OK", data
c.state = "SELECTED"  # imaplib knows no SELECT parameters
hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(c.untagged_responses.get("OK", []))).group(1))
uv = int(c.untagged_responses["UIDVALIDITY"][0])
data = ok(c.fetch("1:*", "(UID MODSEQ)"), "fetch modseq")
assert all(b"MODSEQ" in d for d in data), data
uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]
typ, data = c._simple_command("UID", "STORE", str(uids[0]), "(UNCHANGEDSINCE 1)", "+FLAGS", "(\\Seen)")
assert typ == "OK" and b"MODIFIED" in data[0], (typ, data)
ok(c.uid("STORE", str(uids[1]), "+FLAGS", "(\\Deleted)"), "store")
ok(c.expunge(), "expunge")
ok(c.uid("STORE", str(uids[2]), "+FLAGS", "(\\Answered)"), "store")
c.logout()
c = login("carol@example.org")
ok(c._simple_command("ENABLE", "QRESYNC"), "enable")
typ, data = c._simple_command("SELECT", "INBOX", f"(QRESYNC ({uv} {hms}))")
assert typ == "OK", data
c.state = "SELECTED"
vanished = c.untagged_responses.get("VANISHED", [])
assert any(str(uids[1]).encode() in v for v in vanished), vanished
fetched = b" ".join(x if isinstance(x, bytes) else b"" for x in c.untagged_responses.get("FETCH", []))
assert b"\\Answered" in fetched, fetched
c.logout()
PY

check "IMAP: NAMESPACE, ID, UNSELECT, GETQUOTAROOT" imap_py <<'PY'
from imapcheck import *
c = login("alice@example.org")
typ, data = c.namespace()
assert typ == "OK" and data[0].startswith(b'(("'), data
typ, data = c._simple_command("ID", '("name" "imaplib")')
assert typ == "OK", data
assert b"Cairn" in b" ".join(c.untagged_responses.get("ID", [b""])), c.untagged_responses
ok(c.select("INBOX"), "select")
ok(c._simple_command("UNSELECT"), "unselect")
typ, data = c.getquotaroot("INBOX")
assert typ == "OK", data
c.logout()
PY

check "IMAP: BAD for garbage, the session goes on" imap_py <<'PY'
from imapcheck import *
c = login("alice@example.org")
c.send(b"x1 FROBNICATE\r\n")
line = c.readline()
assert line.startswith(b"x1 BAD"), line
c.send(b"x2 NOOP\r\n")
assert c.readline().startswith(b"x2 OK")
c.logout()
PY

# curl's own IMAP client: list over STARTTLS, fetch a message over IMAPS.
check "IMAP: curl lists mailboxes (STARTTLS)" \
    expect '\\Sent.*Sent' curl -sS --cacert "$cert" --ssl-reqd -u "alice@example.org:$PASSWORD" \
    "imap://localhost:${port[imap]}/"
check "IMAP: curl fetches a message by UID (IMAPS)" \
    expect 'hello from swaks' curl -sS --cacert "$cert" -u "alice@example.org:$PASSWORD" \
    "imaps://localhost:${port[imaps]}/INBOX;UID=1"

# mbsync: 10,000 messages from a local maildir up to Cairn, down again into
# a second maildir, then flag changes on each side.
mbsync_both_ways() {
    local n=10000 root="$work/mbsync"
    mkdir -p "$root/up/cur" "$root/up/new" "$root/up/tmp" "$root/down"
    python3 - "$root/up/cur" "$n" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/{1700000000 + i}.{i}.local:2,", "w") as f:
        f.write(f"From: a@remote.test\nTo: bob@example.org\nSubject: sync {i}\nMessage-ID: <sync{i}@remote.test>\n\nmessage {i}\n")
PY
    # The sync state stays in the run's directory, not ~/.mbsync (where a
    # previous run's state made every later run fail).
    cat >"$root/rc" <<RC
SyncState $root/state/

IMAPAccount cairn
Host localhost
Port ${port[imaps]}
User bob@example.org
Pass $PASSWORD
SSLType IMAPS
CertificateFile $cert
PipelineDepth 50

IMAPStore remote
Account cairn

MaildirStore up
Path $root/up/
Inbox $root/up/

MaildirStore down
Path $root/down/
Inbox $root/down/

Channel push
Far :remote:Archive
Near :up:
Sync Push
Create Far

Channel pull
Far :remote:Archive
Near :down:
Sync Pull
Create Near

Channel both
Far :remote:Archive
Near :down:
RC
    local t0=$SECONDS
    mbsync -q -c "$root/rc" push
    echo "pushed $n messages in $((SECONDS - t0)) s" >&2
    mbsync -q -c "$root/rc" pull
    local got
    got=$(find "$root/down/cur" "$root/down/new" -type f | wc -l)
    [ "$got" -eq "$n" ] || { echo "pulled $got of $n"; return 1; }
    # Flag 10 messages locally, push; flag one on the server (curl), pull.
    local f
    for f in $(find "$root/down/cur" "$root/down/new" -type f | head -10); do
        mv "$f" "${root}/down/cur/$(basename "${f%%:2,*}"):2,F"
    done
    mbsync -q -c "$root/rc" both
    local flagged
    flagged=$(curl -sS --cacert "$cert" -u "bob@example.org:$PASSWORD" \
        "imaps://localhost:${port[imaps]}/Archive" -X 'SEARCH FLAGGED' | tr ' ' '\n' | grep -c '^[0-9]')
    [ "$flagged" -eq 10 ] || { echo "$flagged flagged on the server, expected 10"; return 1; }
    curl -sS --cacert "$cert" -u "bob@example.org:$PASSWORD" \
        "imaps://localhost:${port[imaps]}/Archive" -X 'STORE 1 +FLAGS (\Seen)' >/dev/null
    mbsync -q -c "$root/rc" both
    local seen
    seen=$(find "$root/down/cur" -name '*:2,*S*' | wc -l)
    [ "$seen" -ge 1 ] || { echo "the server's \\Seen did not come down"; return 1; }
}
check "IMAP: mbsync pushes 10,000 messages, pulls them back, syncs flags both ways" mbsync_both_ways

check "IMAP: ESEARCH (RETURN MIN MAX COUNT ALL) and SEARCHRES (\$ in UID FETCH)" imap_py <<'PY'
from imapcheck import *
for i in range(3):
    deliver("carol@example.org", f"esearch {i}")
c = login("carol@example.org")
assert "ESEARCH" in c.capabilities and "SEARCHRES" in c.capabilities, c.capabilities
ok(c.select("INBOX"), "select")
typ, data = c._simple_command("UID", "SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "SUBJECT", "esearch")
assert typ == "OK", (typ, data)
line = b" ".join(c.untagged_responses.pop("ESEARCH", []))
assert re.search(rb'\(TAG "[^"]+"\) UID MIN \d+ MAX \d+ COUNT 3 ALL [\d:,]+', line), line
typ, data = c._simple_command("UID", "SEARCH", "RETURN", "(SAVE)", "SUBJECT", '"esearch 1"')
assert typ == "OK", (typ, data)
assert not c.untagged_responses.pop("ESEARCH", []), "SAVE alone answers no ESEARCH"
data = ok(c.uid("FETCH", "$", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "fetch $")
headers = [d[1] for d in data if isinstance(d, tuple)]
assert len(headers) == 1 and b"esearch 1" in headers[0], data
c.logout()
PY

check "IMAP: LIST-EXTENDED with LIST-STATUS" imap_py <<'PY'
from imapcheck import *
c = login("carol@example.org")
assert "LIST-STATUS" in c.capabilities and "LIST-EXTENDED" in c.capabilities, c.capabilities
typ, data = c._simple_command("LIST", '""', '(INBOX "Dr*")', "RETURN", "(SPECIAL-USE STATUS (MESSAGES UIDNEXT))")
assert typ == "OK", (typ, data)
lists = c.untagged_responses.pop("LIST", [])
status = c.untagged_responses.pop("STATUS", [])
assert any(b"INBOX" in l for l in lists) and any(b"\\Drafts" in l for l in lists), lists
assert len(status) == 2 and all(re.search(rb"MESSAGES \d+ UIDNEXT \d+", s) for s in status), status
typ, data = c._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
assert typ == "OK", (typ, data)
lists = c.untagged_responses.pop("LIST", [])
assert lists and all(re.search(rb"\\(Sent|Drafts|Trash|Junk|Archive)", l) for l in lists), lists
c.logout()
PY

check "IMAP: CREATE-SPECIAL-USE, then LIST shows the attribute" imap_py <<'PY'
from imapcheck import *
c = login("erin@example.org")
assert "CREATE-SPECIAL-USE" in c.capabilities, c.capabilities
typ, data = c._simple_command("CREATE", '"Sent Archive"', "(USE (\\Archive))")
assert typ == "OK", (typ, data)
typ, data = c._simple_command("CREATE", "Nope", "(USE (\\Flagged))")
assert typ == "NO" and b"USEATTR" in data[0], (typ, data)
lines = ok(c.list('""', '"Sent Archive"'), "list")
assert lines and b"\\Archive" in lines[0], lines
c.logout()
PY

check "IMAP: MULTIAPPEND appends all (APPENDUID set) or nothing" imap_py <<'PY'
from imapcheck import *
c = login("erin@example.org")
assert "MULTIAPPEND" in c.capabilities, c.capabilities
ok(c.create("Multi"), "create")
def raw(tag, payload):
    c.send(payload)
    while True:
        line = c.readline()
        if line.startswith(tag.encode() + b" "):
            return line
one, two = b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"
line = raw("M1", b"M1 APPEND Multi (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(one), one, len(two), two))
assert line.startswith(b"M1 OK [APPENDUID ") and re.search(rb" \d+:\d+\]", line), line
many = b" ".join(b"k%d" % i for i in range(70))
line = raw("M2", b"M2 APPEND Multi {%d+}\r\n%s (%s) {%d+}\r\n%s\r\n" % (len(one), one, many, len(two), two))
assert line.startswith(b"M2 NO"), line
data = ok(c.status("Multi", "(MESSAGES)"), "status")
assert b"MESSAGES 2" in data[0], data
c.logout()
PY

check "IMAP: OBJECTID (MAILBOXID kept by RENAME, EMAILID kept by COPY, SEARCH EMAILID/THREADID)" imap_py <<'PY'
from imapcheck import *
c = login("frank@example.org")
assert "OBJECTID" in c.capabilities, c.capabilities
def mailboxid(data):
    return re.search(rb"MAILBOXID \(([A-Za-z0-9_-]{1,255})\)", b" ".join(data)).group(1)
one = mailboxid(ok(c.create("ObjOne"), "create"))
two = mailboxid(ok(c.create("ObjTwo"), "create"))
assert one != two, (one, two)
ok(c.rename("ObjOne", "ObjRenamed"), "rename")
assert mailboxid(ok(c.status("ObjRenamed", "(MESSAGES MAILBOXID)"), "status")) == one
ok(c.select("ObjRenamed"), "select")
assert c.untagged_responses.get("MAILBOXID") == [b"(" + one + b")"], c.untagged_responses
root = b"Message-ID: <obj-root@remote.test>\r\nSubject: root\r\n\r\nroot\r\n"
reply = b"Message-ID: <obj-reply@remote.test>\r\nReferences: <obj-root@remote.test>\r\nSubject: Re: root\r\n\r\nreply\r\n"
for m in (root, reply):
    ok(c.append("ObjRenamed", None, None, m), "append")
ok(c.select("ObjRenamed"), "select")
data = ok(c.fetch("1:2", "(EMAILID THREADID)"), "fetch")
ids = [re.search(rb"EMAILID \((M[0-9a-f]+)\) THREADID \((T[0-9a-f]+)\)", d).groups() for d in data]
assert ids[0][0] != ids[1][0] and ids[0][1] == ids[1][1], ids
emailid, threadid = ids[1]
typ, data = c.copy("2", "ObjTwo")
assert typ == "OK" and b"COPYUID" in data[0], data
ok(c.select("ObjTwo"), "select")
data = ok(c.fetch("1", "(EMAILID)"), "fetch")
assert emailid in data[0], (emailid, data)
assert ok(c.search(None, "EMAILID", emailid.decode()), "search") == [b"1"]
ok(c.select("ObjRenamed"), "select")
assert ok(c.uid("SEARCH", "THREADID", threadid.decode()), "search")[0].split() == [b"1", b"2"]
c.logout()
PY

check "IMAP: ENABLE UTF8=ACCEPT: UTF-8 mailbox names, modified UTF-7 for others" imap_py <<'PY'
import base64, imaplib
from imapcheck import *
def mutf7(name):
    out, run = "", ""
    for ch in name + "\0":
        if " " <= ch <= "~" or ch == "\0":
            if run:
                b64 = base64.b64encode(run.encode("utf-16-be")).decode().rstrip("=")
                out += "&" + b64.replace("/", ",") + "-"
                run = ""
            if ch != "\0":
                out += "&-" if ch == "&" else ch
        else:
            run += ch
    return out
name = "Récents/日本語"
u = login("frank@example.org")
assert "UTF8=ACCEPT" in u.capabilities, u.capabilities
ok(u.enable("UTF8=ACCEPT"), "enable")
assert u.untagged_responses.get("ENABLED") == [b"UTF8=ACCEPT"], u.untagged_responses
ok(u.create(f'"{name}"'), "create")
lines = ok(u.list('""', '"Récents*"'), "list")
assert any(l.endswith(f'"{name}"'.encode()) for l in lines), lines
ok(u.select(f'"{name}"'), "select")
try:
    u._simple_command("SEARCH", "CHARSET", "UTF-8", "ALL")
    raise SystemExit("SEARCH CHARSET accepted after ENABLE UTF8=ACCEPT")
except imaplib.IMAP4.error as e:
    assert "BAD" in str(e), e
assert ok(u.search(None, "ALL"), "search") == [b""]
# APPEND's UTF8 data item (imaplib wraps it inside the literal, so raw).
msg = "Subject: Grüße\r\n\r\nhallo\r\n".encode()
u.send(b'U1 APPEND "R\xc3\xa9cents" UTF8 (~{%d+}\r\n%s)\r\n' % (len(msg), msg))
while not (line := u.readline()).startswith(b"U1 "):
    pass
assert line.startswith(b"U1 OK [APPENDUID"), line
u.logout()
legacy = login("frank@example.org")
lines = ok(legacy.list('""', '"R*"'), "list")
assert any(l.endswith(f'"{mutf7(name)}"'.encode()) for l in lines), (mutf7(name), lines)
data = ok(legacy.status(mutf7("Récents"), "(MESSAGES)"), "status")
assert b"MESSAGES 1" in data[0], data
# Names are kept in NFC: "Re\u0301cents" (combining accent) is the same mailbox.
import unicodedata
decomposed = unicodedata.normalize("NFD", "Récents")
assert decomposed != "Récents"
data = ok(legacy.status(mutf7(decomposed), "(MESSAGES)"), "status of the NFD name")
assert b"MESSAGES 1" in data[0], data
legacy.logout()
PY

check "IMAP: CATENATE puts a message together from new text and a stored one's sections (BADURL)" imap_py <<'PY'
from imapcheck import *
c = login("gina@example.org")
assert "CATENATE" in c.capabilities, c.capabilities
src = (b"From: sender@remote.test\r\nSubject: forward me\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
       b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--B--\r\n")
typ, data = c.append("INBOX", None, None, src)
assert typ == "OK", data
uv, uid = re.search(rb"APPENDUID (\d+) (\d+)", data[0]).groups()
url = f"/INBOX;UIDVALIDITY={uv.decode()}/;UID={uid.decode()}/;SECTION=2".encode()
def raw(tag, payload):
    c.send(payload)
    while True:
        line = c.readline()
        if line.startswith(tag.encode() + b" "):
            return line
head = (b"From: gina@example.org\r\nSubject: Fwd: forward me\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=N\r\n\r\n--N\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--N\r\n")
tail = b"\r\n--N--\r\n"
# The forwarded part: its MIME header and its body, each by URL.
line = raw("C1", b'C1 APPEND Drafts (\\Seen) CATENATE (TEXT {%d+}\r\n%s URL "%s.MIME" URL "%s" TEXT {%d+}\r\n%s)\r\n'
           % (len(head), head, url, url, len(tail), tail))
m = re.match(rb"C1 OK \[APPENDUID \d+ (\d+)\]", line)
assert m, line
ok(c.select("Drafts"), "select")
data = ok(c.uid("FETCH", m.group(1), "(BODY.PEEK[] BINARY.PEEK[2])"), "fetch")
mime = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
assert data[0][1] == head + mime + b"QUJD" + tail, data
assert data[1][1] == b"ABC", data
# A URL that names nothing here: NO [BADURL url], nothing appended.
n = int(ok(c.status("Drafts", "(MESSAGES)"), "status")[0].split()[-1].rstrip(b")"))
for bad in (url.replace(b"UID=", b"UID=9"), b"/Nope/;UID=1", b"imap://bob%40example.org@localhost/INBOX/;UID=1"):
    line = raw("C2", b'C2 APPEND Drafts CATENATE (TEXT {2+}\r\nhi URL "%s")\r\n' % bad)
    assert line.startswith(b"C2 NO [BADURL " + bad + b"]"), line
assert int(ok(c.status("Drafts", "(MESSAGES)"), "status")[0].split()[-1].rstrip(b")")) == n
c.logout()
PY
