//! The SFUs under test, side by side on the same terms: a network
//! namespace made for the run (a veth pair, 10.77.0.1 on this side and
//! 10.77.0.2 inside; Janus's libnice ignores loopback, so both servers
//! get the same veth path), Cairn (its HTTP listener and media sockets on
//! the namespace's address) and Janus 1.1 (Debian `janus`, videoroom plugin
//! and HTTP transport only, from a config folder written here), each driven
//! over its own signalling API with blocking HTTP.
//!
//! Everything made here is undone when its guard drops: processes get
//! SIGTERM (then SIGKILL), the namespace is deleted with its veth pair.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::rtc_load::{answer_offer, Client, Pending};

/// This side of the veth pair.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The namespace's side, where the servers listen.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with a veth pair to this one; deleted on drop.
pub struct Netns {
    pub name: String,
    /// The veth end inside the namespace.
    pub inner: String,
    outer: String,
}

impl Netns {
    /// Makes `cairnbench-PID` with `cbPIDa` (here, 10.77.0.1/24) and
    /// `cbPIDb` (inside, 10.77.0.2/24), loopback up inside.
    pub fn create() -> Result<Self, String> {
        let pid = std::process::id();
        let ns = Self {
            name: format!("cairnbench-{pid}"),
            outer: format!("cb{pid}a"),
            inner: format!("cb{pid}b"),
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on, drop undoes what was made.
        ip(&[
            "link", "add", &ns.outer, "type", "veth", "peer", "name", &ns.inner,
        ])?;
        ip(&["link", "set", &ns.inner, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", &ns.outer])?;
        ip(&["link", "set", &ns.outer, "up"])?;
        let n = ns.name.clone();
        ip(&[
            "-n",
            &n,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            &ns.inner,
        ])?;
        ip(&["-n", &n, "link", "set", &ns.inner, "up"])?;
        ip(&["-n", &n, "link", "set", "lo", "up"])?;
        // The link needs a moment before the first packet passes.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let probe = std::net::TcpStream::connect_timeout(
                &SocketAddr::new(IpAddr::V4(SERVER_IP), 9),
                Duration::from_millis(200),
            );
            if probe.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ns)
    }

    /// The namespace's UDP counters (/proc/net/snmp): InDatagrams,
    /// InErrors, RcvbufErrors, SndbufErrors.
    pub fn udp_counters(&self) -> [u64; 4] {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat", "/proc/net/snmp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        udp_counters(&out)
    }

    /// `ip netns exec NAME program`.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        // Deleting the namespace deletes the pair; this is for a half-made one.
        let _ = ip(&["link", "del", &self.outer]);
    }
}

/// InDatagrams, InErrors, RcvbufErrors and SndbufErrors from the text
/// of /proc/net/snmp.
pub fn udp_counters(snmp: &str) -> [u64; 4] {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return [0; 4];
    };
    let field = |want: &str| {
        names
            .split_whitespace()
            .position(|n| n == want)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    [
        field("InDatagrams"),
        field("InErrors"),
        field("RcvbufErrors"),
        field("SndbufErrors"),
    ]
}

/// A server process, stopped on drop (SIGTERM, then SIGKILL after 10 s).
pub struct Process {
    child: Child,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of a process (all its threads), from
/// /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // "pid (comm) state ppid …": utime and stime are fields 14 and 15,
    // the 12th and 13th after the closing parenthesis.
    let fields: Vec<&str> = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .map(|rest| rest.split_ascii_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (tick(11) + tick(12)) as f64 / hz
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// A room on a server, and its publishers as the server names them.
pub struct Room {
    pub id: String,
    /// The shard that owns it (Cairn).
    pub shard: Option<u64>,
    /// By publisher index: the server's name for it.
    publishers: Vec<(usize, String)>,
}

impl Room {
    fn publisher(&self, index: usize) -> Result<&str, String> {
        self.publishers
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, id)| id.as_str())
            .ok_or_else(|| format!("no publisher {index} in room {}", self.id))
    }
}

/// One SFU under test, as the benchmark drives it.
pub trait Sfu {
    /// Its name in the report.
    fn name(&self) -> String;
    /// Its process (for CPU time).
    fn pid(&self) -> u32;
    /// The cores it may use (Cairn: its shards; Janus: the machine's).
    fn cores(&self) -> usize;
    /// Opens a room for `publishers` publishers and `sessions` sessions;
    /// `n` numbers rooms within a run.
    fn create_room(&mut self, n: usize, publishers: usize, sessions: usize)
        -> Result<Room, String>;
    /// Joins publisher `index` (a str0m client on [`CLIENT_IP`]).
    fn publish(&mut self, room: &mut Room, index: usize, audio: bool) -> Result<Client, String>;
    /// Joins a subscriber of publisher `index`.
    fn subscribe(&mut self, room: &Room, index: usize, audio: bool) -> Result<Client, String>;
    /// Ends the room and its sessions.
    fn close_room(&mut self, room: Room);
    /// Whether the server still runs.
    fn alive(&mut self) -> bool;
    /// Datagrams the server has received and dropped so far, where it
    /// tells (Cairn: `GET /api/v1/rooms`, summed over shards).
    fn datagram_counters(&mut self) -> Option<(u64, u64)> {
        None
    }
}

/// Cairn (release build) inside the namespace.
pub struct Cairn {
    process: Process,
    base: String,
    token: String,
    shards: usize,
    http: reqwest::blocking::Client,
}

impl Cairn {
    /// Starts `bin` in `ns` with its data in `dir`: HTTP on
    /// 10.77.0.2:10080, media on 10.77.0.2:30000 + shard; its other
    /// listeners stay on the namespace's own loopback.
    pub fn start(bin: &Path, ns: &Netns, dir: &Path, shards: usize) -> Result<Self, String> {
        let config = format!(
            "data_dir = \"{}/data\"\n\n[shards]\ncount = {shards}\n\n[listeners.http]\naddress = \"{SERVER_IP}\"\nport = 10080\n\n[media]\naddress = \"{SERVER_IP}\"\nport_min = 30000\nport_max = 30099\n\n[limits]\nmax_connections_per_ip = 100000\n\n[log]\nlevel = \"warn\"\n\n[dns]\nservers = [\"127.0.0.1:9\"]\n",
            dir.display()
        );
        let path = dir.join("appliance.toml");
        std::fs::write(&path, config).map_err(|e| format!("write {}: {e}", path.display()))?;
        let log =
            std::fs::File::create(dir.join("cairn.log")).map_err(|e| format!("cairn.log: {e}"))?;
        let mut child = ns
            .command(bin)
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "start {}: {e} (cargo build --release -p cairn)",
                    bin.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut process = Process { child };
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = false;
        for line in lines.by_ref() {
            match line {
                Ok(l) if l.starts_with("Stop with") => {
                    banner = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        if !banner || !process.alive() {
            return Err(format!(
                "cairn did not start; see {}",
                dir.join("cairn.log").display()
            ));
        }
        let token = std::fs::read_to_string(dir.join("data/api-token"))
            .map_err(|e| format!("the API token: {e}"))?
            .trim()
            .to_string();
        let shards = if shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            shards
        };
        Ok(Self {
            process,
            base: format!("http://{SERVER_IP}:10080"),
            token,
            shards,
            http: http(),
        })
    }

    fn post_sdp(&self, path: &str, sdp: &str) -> Result<(String, String), String> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/sdp")
            .body(sdp.to_string())
            .send()
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.text().map_err(|e| format!("POST {path}: {e}"))?;
        if status.as_u16() != 201 {
            return Err(format!("POST {path}: {status} {body}"));
        }
        let session = location.rsplit('/').next().unwrap_or("").to_string();
        Ok((session, body))
    }
}

impl Sfu for Cairn {
    fn name(&self) -> String {
        "cairn".into()
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn cores(&self) -> usize {
        self.shards
    }

    fn create_room(
        &mut self,
        n: usize,
        publishers: usize,
        sessions: usize,
    ) -> Result<Room, String> {
        let id = format!("bench-{}-{n}", std::process::id());
        let r = self
            .http
            .post(format!("{}/api/v1/rooms", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "id": id,
                "name": "media load",
                "max_publishers": publishers,
                "max_sessions": sessions,
                "max_bitrate_kbps": 4000,
            }))
            .send()
            .map_err(|e| format!("create a room: {e}"))?;
        let status = r.status();
        let body: Value = r.json().map_err(|e| format!("create a room: {e}"))?;
        if status.as_u16() != 201 {
            return Err(format!("create a room: {status} {body}"));
        }
        Ok(Room {
            id: body["id"].as_str().unwrap_or(&id).to_string(),
            shard: body["shard"].as_u64(),
            publishers: Vec::new(),
        })
    }

    fn publish(&mut self, room: &mut Room, index: usize, audio: bool) -> Result<Client, String> {
        let p = Pending::publisher(IpAddr::V4(CLIENT_IP), audio)?;
        let (session, answer) =
            self.post_sdp(&format!("/api/v1/rooms/{}/publish", room.id), &p.offer)?;
        room.publishers.push((index, session));
        p.into_publisher(&answer, index)
    }

    fn subscribe(&mut self, room: &Room, index: usize, audio: bool) -> Result<Client, String> {
        let s = Pending::subscriber(IpAddr::V4(CLIENT_IP), audio)?;
        let publisher = room.publisher(index)?;
        let (_, answer) = self.post_sdp(
            &format!("/api/v1/rooms/{}/subscribe/{publisher}", room.id),
            &s.offer,
        )?;
        s.into_subscriber(&answer, index)
    }

    fn close_room(&mut self, room: Room) {
        let _ = self
            .http
            .delete(format!("{}/api/v1/rooms/{}", self.base, room.id))
            .bearer_auth(&self.token)
            .send();
    }

    fn alive(&mut self) -> bool {
        self.process.alive()
    }

    fn datagram_counters(&mut self) -> Option<(u64, u64)> {
        let list: Value = self
            .http
            .get(format!("{}/api/v1/rooms", self.base))
            .bearer_auth(&self.token)
            .send()
            .and_then(|r| r.json())
            .ok()?;
        let shards = list["shards"].as_array()?;
        let sum = |key: &str| shards.iter().filter_map(|s| s[key].as_u64()).sum::<u64>();
        Some((sum("received"), sum("dropped")))
    }
}

/// Janus 1.1 inside the namespace: one Janus session, a plugin handle per
/// client, events read by long poll.
pub struct Janus {
    process: Process,
    base: String,
    http: reqwest::blocking::Client,
    session: u64,
    /// The handle that creates and destroys rooms.
    admin: u64,
    /// Handles of the current room's clients.
    handles: Vec<u64>,
    transaction: u64,
    room_base: u64,
}

const JANUS_LIB: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// Writes Janus's config folder under `dir`: only the HTTP transport and
/// the videoroom plugin (symlinked into folders of their own), ICE on the
/// veth inside the namespace, no STUN, no session timeout.
fn janus_config(dir: &Path, interface: &str) -> Result<PathBuf, String> {
    let conf = dir.join("conf");
    let mk =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()));
    for sub in ["conf", "plugins", "transports", "events", "loggers"] {
        mk(&dir.join(sub))?;
    }
    let link = |from: &str, to: &Path| {
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(Path::new(JANUS_LIB).join(from), to)
            .map_err(|e| format!("symlink {from}: {e}"))
    };
    link(
        "plugins/libjanus_videoroom.so",
        &dir.join("plugins/libjanus_videoroom.so"),
    )?;
    link(
        "transports/libjanus_http.so",
        &dir.join("transports/libjanus_http.so"),
    )?;
    let d = dir.display();
    let main = format!(
        r#"general: {{
	configs_folder = "{d}/conf"
	plugins_folder = "{d}/plugins"
	transports_folder = "{d}/transports"
	events_folder = "{d}/events"
	loggers_folder = "{d}/loggers"
	debug_level = 3
	session_timeout = 0
	server_name = "cairn-bench"
}}
certificates: {{
}}
media: {{
	rtp_port_range = "20000-40000"
}}
nat: {{
	nice_debug = false
	ice_enforce_list = "{interface}"
	ice_ignore_list = ""
	ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
	broadcast = false
}}
"#
    );
    let http = format!(
        r#"general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = 8088
	ip = "{SERVER_IP}"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
"#
    );
    let videoroom = "general: {\n}\n";
    let write = |name: &str, text: &str| {
        std::fs::write(conf.join(name), text).map_err(|e| format!("write {name}: {e}"))
    };
    write("janus.jcfg", &main)?;
    write("janus.transport.http.jcfg", &http)?;
    write("janus.plugin.videoroom.jcfg", videoroom)?;
    Ok(conf)
}

impl Janus {
    /// Starts `janus` in `ns` with a config folder under `dir` and opens
    /// the session and the room handle.
    pub fn start(ns: &Netns, dir: &Path) -> Result<Self, String> {
        let conf = janus_config(dir, &ns.inner)?;
        let log = dir.join("janus.log");
        let child = ns
            .command(Path::new("/usr/bin/janus"))
            .arg("-C")
            .arg(conf.join("janus.jcfg"))
            .arg("-F")
            .arg(&conf)
            .arg("-L")
            .arg(&log)
            .args(["-N", "-o"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start janus: {e} (apt-get install janus)"))?;
        let mut janus = Self {
            process: Process { child },
            base: format!("http://{SERVER_IP}:8088/janus"),
            http: http(),
            session: 0,
            admin: 0,
            handles: Vec::new(),
            transaction: 0,
            room_base: u64::from(std::process::id()) * 1000,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !janus.process.alive() {
                return Err(format!("janus exited; see {}", log.display()));
            }
            let up = janus
                .http
                .get(format!("{}/info", janus.base))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("janus did not answer; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let created = janus.request("", json!({"janus": "create"}))?;
        janus.session = created["data"]["id"].as_u64().ok_or("no session id")?;
        janus.admin = janus.attach()?;
        Ok(janus)
    }

    fn request(&mut self, path: &str, mut body: Value) -> Result<Value, String> {
        self.transaction += 1;
        body["transaction"] = json!(format!("t{}", self.transaction));
        let url = format!("{}{path}", self.base);
        let r: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .and_then(|r| r.json())
            .map_err(|e| format!("POST {url}: {e}"))?;
        match r["janus"].as_str() {
            Some("success" | "ack") => Ok(r),
            _ => Err(format!("janus: {r}")),
        }
    }

    fn attach(&mut self) -> Result<u64, String> {
        let r = self.request(
            &format!("/{}", self.session),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| "no handle id".into())
    }

    /// Sends a plugin message (with a JSEP) and waits for the plugin's
    /// event on that handle.
    fn message(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            msg["jsep"] = jsep;
        }
        let r = self.request(&format!("/{}/{handle}", self.session), msg)?;
        if r["janus"] == "success" {
            // A synchronous request answers at once.
            return Ok(r);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let url = format!("{}/{}?maxev=10", self.base, self.session);
            let events: Value = self
                .http
                .get(&url)
                .send()
                .and_then(|r| r.json())
                .map_err(|e| format!("GET {url}: {e}"))?;
            let list = match events {
                Value::Array(list) => list,
                one => vec![one],
            };
            for e in list {
                if e["janus"] == "event" && e["sender"].as_u64() == Some(handle) {
                    if let Some(err) = e["plugindata"]["data"]["error"].as_str() {
                        return Err(format!("videoroom: {err}"));
                    }
                    return Ok(e);
                }
            }
        }
        Err("no event from janus in 20 s".into())
    }
}

impl Sfu for Janus {
    fn name(&self) -> String {
        "janus".into()
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn cores(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    fn create_room(
        &mut self,
        n: usize,
        publishers: usize,
        _sessions: usize,
    ) -> Result<Room, String> {
        self.room_base += 1;
        let room = self.room_base * 100 + n as u64;
        let r = self.message(
            self.admin,
            json!({
                "request": "create",
                "room": room,
                "publishers": publishers,
                "bitrate": 4_000_000,
                "fir_freq": 0,
                "videocodec": "vp8",
                "audiocodec": "opus",
                "notify_joining": false,
            }),
            None,
        )?;
        if r["plugindata"]["data"]["videoroom"] != "created" {
            return Err(format!("create a room: {r}"));
        }
        Ok(Room {
            id: room.to_string(),
            shard: None,
            publishers: Vec::new(),
        })
    }

    fn publish(&mut self, room: &mut Room, index: usize, audio: bool) -> Result<Client, String> {
        let handle = self.attach()?;
        self.handles.push(handle);
        let p = Pending::publisher(IpAddr::V4(CLIENT_IP), audio)?;
        let room_id: u64 = room.id.parse().map_err(|_| "room id")?;
        let e = self.message(
            handle,
            json!({
                "request": "joinandconfigure",
                "room": room_id,
                "ptype": "publisher",
                "display": format!("p{index}"),
                "audio": audio,
                "video": true,
            }),
            Some(json!({"type": "offer", "sdp": p.offer})),
        )?;
        let id = e["plugindata"]["data"]["id"]
            .as_u64()
            .ok_or_else(|| format!("join as publisher: {e}"))?;
        let answer = e["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| format!("no answer: {e}"))?;
        room.publishers.push((index, id.to_string()));
        p.into_publisher(answer, index)
    }

    fn subscribe(&mut self, room: &Room, index: usize, _audio: bool) -> Result<Client, String> {
        let handle = self.attach()?;
        self.handles.push(handle);
        let feed: u64 = room.publisher(index)?.parse().map_err(|_| "feed id")?;
        let room_id: u64 = room.id.parse().map_err(|_| "room id")?;
        let e = self.message(
            handle,
            json!({
                "request": "join",
                "room": room_id,
                "ptype": "subscriber",
                "streams": [{"feed": feed}],
            }),
            None,
        )?;
        let offer = e["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| format!("no offer for the subscriber: {e}"))?;
        let (client, answer) = answer_offer(IpAddr::V4(CLIENT_IP), offer, index)?;
        self.message(
            handle,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )?;
        Ok(client)
    }

    fn close_room(&mut self, room: Room) {
        for h in std::mem::take(&mut self.handles) {
            let _ = self.request(
                &format!("/{}/{h}", self.session),
                json!({"janus": "detach"}),
            );
        }
        if let Ok(id) = room.id.parse::<u64>() {
            let _ = self.message(self.admin, json!({"request": "destroy", "room": id}), None);
        }
    }

    fn alive(&mut self) -> bool {
        self.process.alive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_counters_are_read_by_name() {
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\nUdp: 770841 165243 7 397910 5 2 0\nUdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\nUdpLite: 1 2 3 4 5 6 7\n";
        assert_eq!(udp_counters(snmp), [770841, 7, 5, 2]);
        assert_eq!(udp_counters("Ip: 1\n"), [0; 4]);
    }

    #[test]
    fn this_process_has_cpu_time() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(std::process::id()) > 0.0);
    }
}
